//! A throwaway `redis-server` on loopback, for tests, benchmarks and the checker: started on a
//! free port with its own temporary directory and no persistence unless asked, and stopped
//! (its directory removed) when dropped.
//!
//! ```no_run
//! use safemap_redis::server::LocalServer;
//!
//! let server = LocalServer::start().expect("redis-server on PATH");
//! println!("talk to {}", server.url());
//! // Stopped here.
//! ```

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The program started: `$SAFEMAP_REDIS_SERVER` if set, else `redis-server` from `PATH`.
pub fn program() -> PathBuf {
    std::env::var_os("SAFEMAP_REDIS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("redis-server"))
}

/// Whether [`program`] runs.
pub fn installed() -> bool {
    Command::new(program())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Installs Debian's `redis-server` package with `apt-get` when [`program`] does not run, as
/// `.ci/run` and the tests do on a fresh machine. Needs root and Debian's package index.
///
/// Safe to call from many threads and processes at once (parallel tests on a fresh machine do):
/// threads of one process take turns, and a process whose `apt-get` fails because another holds
/// apt's locks looks again, so one installs and the others find the program there.
pub fn install_if_missing() -> io::Result<()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut failure = None;
    for attempt in 0..3 {
        if installed() {
            return Ok(());
        }
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        match apt_install() {
            Ok(()) if installed() => return Ok(()),
            Ok(()) => {
                return Err(io::Error::other(
                    "apt-get installed redis-server, but it does not run",
                ));
            }
            Err(error) => failure = Some(error),
        }
    }
    if installed() {
        return Ok(());
    }
    Err(failure.expect("a failed attempt"))
}

fn apt_install() -> io::Result<()> {
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "redis-server"],
    ] {
        let status = Command::new("apt-get")
            // Another process's install may hold dpkg's lock for a while; wait for it.
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "`apt-get {}` failed: {status}",
                args.join(" ")
            )));
        }
    }
    Ok(())
}

/// A running `redis-server` this value owns.
#[derive(Debug)]
pub struct LocalServer {
    child: Child,
    port: u16,
    args: Vec<String>,
    dir: TempDir,
}

impl LocalServer {
    /// Starts a server that keeps nothing on disk.
    pub fn start() -> io::Result<Self> {
        Self::start_with(&["--save", "", "--appendonly", "no"])
    }

    /// Starts a server with extra configuration arguments (`["--appendonly", "yes"]`, say),
    /// given after the port, address and directory this type chooses.
    pub fn start_with(args: &[&str]) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("safemap-redis-")
            .tempdir()?;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let mut last = None;
        // The free port is found by binding it and letting go, so another process can take it
        // before the server does; a few tries make that race harmless.
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(dir.path(), port, &args) {
                Ok(child) => {
                    return Ok(LocalServer {
                        child,
                        port,
                        args,
                        dir,
                    });
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address as a `redis://` URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server at once (`SIGKILL`), as a crash would: what it had not written to disk is
    /// gone.
    pub fn kill(&mut self) -> io::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Stops the server in its tracks (`SIGSTOP`), as a host that freezes would: connections
    /// stay open and nothing is answered until [`resume`](Self::resume).
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a [paused](Self::pause) server go on (`SIGCONT`); it then answers what it was sent.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} failed: {status}")))
        }
    }

    /// Starts the server again on the same port, directory and configuration, after
    /// [`kill`](Self::kill); with `--appendonly yes` it reloads what it had written.
    pub fn restart(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_none() {
            self.kill()?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match spawn(self.dir.path(), self.port, &self.args) {
                Ok(child) => {
                    self.child = child;
                    return Ok(());
                }
                // The old socket may linger a moment.
                Err(error) if Instant::now() > deadline => return Err(error),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // SIGKILL ends a paused server too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Starts the server and waits until it answers `PING`; kills it if it does not within 10 s.
fn spawn(dir: &Path, port: u16, args: &[String]) -> io::Result<Child> {
    let mut child = Command::new(program())
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run {:?}: {e}", program())))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Err(io::Error::other(format!(
                "redis-server exited at start: {status}"
            )));
        }
        if answers_ping(port) {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "redis-server did not answer within 10 s",
    ))
}

/// Whether a server on `port` answers `PING` (a server still loading its data answers an error).
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
