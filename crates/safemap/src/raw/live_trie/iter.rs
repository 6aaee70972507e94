//! Walks over a kept root (a snapshot's), which no write changes: borrowed ([`Iter`]) or
//! holding counts of the nodes still to visit ([`Leaves`]), for iteration in chunks.

use std::ops::Range;
use std::sync::Arc;

use super::node::{Edge, Inner, Leaf, Node, Root, Slot};

/// The entries below a kept root, depth first.
pub struct Iter<'a, K, V> {
    /// The slots still to visit, one run per branch on the path.
    pending: Vec<std::slice::Iter<'a, Slot<K, V>>>,
    leaf: std::slice::Iter<'a, (K, V)>,
}

impl<'a, K, V> Iter<'a, K, V> {
    /// # Safety
    /// No write changes a node below `root` while `'a` lasts (a snapshot's root).
    pub(crate) unsafe fn of(root: &'a Root<K, V>) -> Self {
        // SAFETY: as the caller promises.
        unsafe { Self::below(root.slots()) }
    }

    /// The entries below `slots`.
    ///
    /// # Safety
    /// No write changes `slots` or a node below them while `'a` lasts.
    pub(crate) unsafe fn below(slots: &'a [Slot<K, V>]) -> Self {
        Iter {
            pending: vec![slots.iter()],
            leaf: [].iter(),
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, value)) = self.leaf.next() {
                return Some((key, value));
            }
            let run = self.pending.last_mut()?;
            let Some(slot) = run.next() else {
                self.pending.pop();
                continue;
            };
            // SAFETY: `of`'s caller promised that nothing below the root changes for `'a`, and
            // each node holds a count of its children.
            match unsafe { slot.held() } {
                Node::Empty => {}
                Node::Leaf(leaf) => self.leaf = leaf.entries(),
                Node::Branch(branch) => self.pending.push(branch.slots().iter()),
            }
        }
    }
}

/// The leaves below a kept root, depth first, holding a count of each branch on the way down:
/// a cursor that outlives any borrow and splits for parallel iteration.
pub struct Leaves<K, V> {
    /// The branches on the path to the next leaf, each with the slots still to visit.
    frames: Vec<Frame<K, V>>,
}

enum Frame<K, V> {
    Root(Arc<Root<K, V>>, Range<usize>),
    Inner(Arc<Inner<K, V>>, Range<usize>),
}

impl<K, V> Frame<K, V> {
    fn range(&mut self) -> &mut Range<usize> {
        match self {
            Frame::Root(_, range) | Frame::Inner(_, range) => range,
        }
    }

    fn left(&self) -> usize {
        match self {
            Frame::Root(_, range) | Frame::Inner(_, range) => range.len(),
        }
    }

    fn slots(&self) -> &[Slot<K, V>] {
        match self {
            Frame::Root(root, _) => root.slots(),
            Frame::Inner(branch, _) => branch.slots(),
        }
    }

    /// The same branch over `range`.
    fn over(&self, range: Range<usize>) -> Self {
        match self {
            Frame::Root(root, _) => Frame::Root(Arc::clone(root), range),
            Frame::Inner(branch, _) => Frame::Inner(Arc::clone(branch), range),
        }
    }
}

impl<K, V> Leaves<K, V> {
    /// The leaves below `root`.
    ///
    /// # Safety
    /// No write changes a node below `root` any more (a snapshot's root).
    pub(crate) unsafe fn of(root: Arc<Root<K, V>>) -> Self {
        let slots = 0..root.slots().len();
        Leaves {
            frames: vec![Frame::Root(root, slots)],
        }
    }

    /// The next leaf, depth first.
    pub(crate) fn next_leaf(&mut self) -> Option<Arc<Leaf<K, V>>> {
        loop {
            let frame = self.frames.last_mut()?;
            let Some(index) = frame.range().next() else {
                self.frames.pop();
                continue;
            };
            // SAFETY: the cursor's nodes are below a root no write changes (`of`), and the
            // frame holds a count of its branch.
            match unsafe { frame.slots()[index].share() } {
                None => {}
                Some(Edge::Leaf(leaf)) => return Some(leaf),
                Some(Edge::Branch(branch)) => {
                    let slots = 0..branch.slots().len();
                    self.frames.push(Frame::Inner(branch, slots));
                }
            }
        }
    }

    /// Takes about half of what is left into a cursor of its own: the later half of the
    /// shallowest branch with two slots or more still to visit, or the slot of the shallowest
    /// that has one, if a deeper one has one too. A lone branch left is opened first; `None` once
    /// one leaf at most is left.
    pub(crate) fn split(&mut self) -> Option<Self> {
        loop {
            if let Some(frame) = self.frames.iter_mut().find(|f| f.left() >= 2) {
                let range = frame.range().clone();
                let middle = range.start + range.len() / 2;
                frame.range().end = middle;
                return Some(Leaves {
                    frames: vec![frame.over(middle..range.end)],
                });
            }
            let first = self.frames.iter().position(|f| f.left() == 1)?;
            let frame = &mut self.frames[first];
            let range = frame.range().clone();
            if self.frames[first + 1..].iter().any(|f| f.left() == 1) {
                let other = self.frames[first].over(range.clone());
                self.frames[first].range().start = range.end;
                return Some(Leaves {
                    frames: vec![other],
                });
            }
            // Its one slot is all that is left: the frames below it are done.
            self.frames.truncate(first + 1);
            let frame = &mut self.frames[first];
            // SAFETY: as in `next_leaf`.
            let Some(Edge::Branch(branch)) = (unsafe { frame.slots()[range.start].share() }) else {
                return None;
            };
            frame.range().start = range.end;
            let slots = 0..branch.slots().len();
            self.frames.push(Frame::Inner(branch, slots));
        }
    }
}

/// The entries each branch below `root` (the root first, then depth first) holds in the leaves
/// of its own slots: the keys a write to one of them locks out, as the branch's lock is theirs.
///
/// # Safety
/// No write changes a node below `root` any more (a snapshot's root).
pub(crate) unsafe fn lock_domains<K, V>(root: &Root<K, V>) -> Vec<usize> {
    let mut domains = Vec::new();
    // SAFETY: as the caller promises.
    unsafe { count_domains(root.slots(), &mut domains) };
    domains
}

/// # Safety
/// As for [`lock_domains`], for `slots`.
unsafe fn count_domains<K, V>(slots: &[Slot<K, V>], domains: &mut Vec<usize>) {
    let at = domains.len();
    domains.push(0);
    for slot in slots {
        // SAFETY: as the caller promises; each node holds a count of its children.
        match unsafe { slot.held() } {
            Node::Empty => {}
            Node::Leaf(leaf) => domains[at] += leaf.len(),
            // SAFETY: as above.
            Node::Branch(branch) => unsafe { count_domains(branch.slots(), domains) },
        }
    }
}
