//! One vocabulary for every single-key write: a [`Target`] says which key (borrowed, or owned so
//! that an absent entry can be stored), a core locates that key's [`KeyEntry`] with the key's
//! other writers excluded, and an [`EntryOp`] does its work on the entry. `insert`, `remove_if`,
//! `compute`, `update` and `update_or_insert_with` are the five operations here, written once for
//! every core; a core writes only how to lock and locate (`Core::write`) and its entry.

use equivalent::Equivalent;

use crate::map::Action;

/// What a lookup carries to a core: the key's hash, computed once by the front, and how to
/// recognise the key among the stored ones.
pub trait Probe<K>: Copy {
    /// The key's hash under the map's hasher.
    fn hash(&self) -> u64;
    /// Whether `stored` is the probed key.
    fn matches(&self, stored: &K) -> bool;
}

/// A probe for `key`, in any form `Q` equivalent to the stored keys (a borrowed form, for one).
pub struct Lookup<'q, Q: ?Sized> {
    /// The key's hash under the map's hasher.
    pub hash: u64,
    /// The key.
    pub key: &'q Q,
}

impl<Q: ?Sized> Clone for Lookup<'_, Q> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Q: ?Sized> Copy for Lookup<'_, Q> {}

impl<K, Q: Equivalent<K> + ?Sized> Probe<K> for Lookup<'_, Q> {
    #[inline]
    fn hash(&self) -> u64 {
        self.hash
    }

    #[inline]
    fn matches(&self, stored: &K) -> bool {
        self.key.equivalent(stored)
    }
}

/// What a write locates its entry by: a borrowed key, or an owned one that an absent entry can
/// be stored under.
pub trait Target<K>: Sized {
    /// Whether an absent entry can be stored: the target owns its key.
    const OWNS_KEY: bool;
    /// How to find the key among the stored ones.
    fn probe(&self) -> impl Probe<K>;
    /// The key to store an absent entry under; `None` for a borrowed key.
    fn into_key(self) -> Option<K>;
}

impl<K, Q: Equivalent<K> + ?Sized> Target<K> for Lookup<'_, Q> {
    const OWNS_KEY: bool = false;

    #[inline]
    fn probe(&self) -> impl Probe<K> {
        *self
    }

    fn into_key(self) -> Option<K> {
        None
    }
}

/// An owned key and its hash: the target of a write that may store a new entry.
pub struct Owned<K> {
    /// The key's hash under the map's hasher.
    pub hash: u64,
    /// The key.
    pub key: K,
}

impl<K: Eq> Target<K> for Owned<K> {
    const OWNS_KEY: bool = true;

    #[inline]
    fn probe(&self) -> impl Probe<K> {
        Lookup {
            hash: self.hash,
            key: &self.key,
        }
    }

    #[inline]
    fn into_key(self) -> Option<K> {
        Some(self.key)
    }
}

/// One key's entry, present or absent, as a write sees it with the key's other writers
/// excluded. A core may locate it lazily, on the first call that needs it, and then keep where
/// it is, so that an operation probes once.
pub trait KeyEntry<K, V>: Sized {
    /// The stored key and value, if the key is present.
    fn get(&mut self) -> Option<(&K, &V)>;
    /// Runs `change` once on the stored value, in place or on a copy the core then stores;
    /// `None`, without running it, if the key is absent.
    fn change<R>(&mut self, change: impl FnOnce(&mut V) -> R) -> Option<R>;
    /// Stores `value` for the key; returns the value it displaced.
    ///
    /// # Panics
    /// If the key is absent and the target borrowed it (there is no key to store): the
    /// provided writes store only under an owned key.
    fn set(self, value: V) -> Option<V>;
    /// Removes the entry; returns its value.
    fn remove(self) -> Option<V>;
}

/// The key a write stores an absent entry under.
pub(crate) fn key_to_store<K>(target: impl Target<K>) -> K {
    target
        .into_key()
        .expect("only a write by owned key stores an absent entry")
}

/// A single-key write, run once on the entry its target locates.
pub trait EntryOp<K, V> {
    /// The operation's result.
    type Output;
    /// Does the work on `entry`.
    fn run(self, entry: impl KeyEntry<K, V>) -> Self::Output;
}

/// Stores the value; outputs the displaced one.
pub struct Insert<V>(pub V);

/// Removes the entry if the closure approves of it; outputs the removed value.
pub struct RemoveIf<F>(pub F);

/// Runs the closure on a present value; outputs its result, `None` if absent.
pub struct Change<F>(pub F);

/// Runs `change` on the present value, or on `make()`'s, which is then stored.
pub struct ChangeOrInsert<M, F> {
    /// Builds the value of an absent key.
    pub make: M,
    /// Changes the value.
    pub change: F,
}

/// Applies the action the closure chooses; outputs the displaced value.
pub struct Compute<F>(pub F);

impl<K, V> EntryOp<K, V> for Insert<V> {
    type Output = Option<V>;

    #[inline(always)]
    fn run(self, entry: impl KeyEntry<K, V>) -> Option<V> {
        entry.set(self.0)
    }
}

impl<K, V, F: FnOnce(&K, &V) -> bool> EntryOp<K, V> for RemoveIf<F> {
    type Output = Option<V>;

    #[inline(always)]
    fn run(self, mut entry: impl KeyEntry<K, V>) -> Option<V> {
        let (key, value) = entry.get()?;
        if (self.0)(key, value) {
            entry.remove()
        } else {
            None
        }
    }
}

impl<K, V, R, F: FnOnce(&mut V) -> R> EntryOp<K, V> for Change<F> {
    type Output = Option<R>;

    #[inline]
    fn run(self, mut entry: impl KeyEntry<K, V>) -> Option<R> {
        entry.change(self.0)
    }
}

impl<K, V, R, M, F> EntryOp<K, V> for ChangeOrInsert<M, F>
where
    M: FnOnce() -> V,
    F: FnOnce(&mut V) -> R,
{
    type Output = R;

    fn run(self, mut entry: impl KeyEntry<K, V>) -> R {
        if entry.get().is_some() {
            return entry.change(self.change).expect("the entry is present");
        }
        let mut value = (self.make)();
        let result = (self.change)(&mut value);
        // Nothing is displaced: the key is absent.
        let _ = entry.set(value);
        result
    }
}

impl<K, V, F: FnOnce(Option<&V>) -> Action<V>> EntryOp<K, V> for Compute<F> {
    type Output = Option<V>;

    #[inline(always)]
    fn run(self, mut entry: impl KeyEntry<K, V>) -> Option<V> {
        match (self.0)(entry.get().map(|(_, value)| value)) {
            Action::Keep => None,
            Action::Set(value) => entry.set(value),
            Action::Remove => entry.remove(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry over one optional slot, recording which of its methods ran.
    struct Slot<'a> {
        stored: &'a mut Option<(u32, String)>,
        key: Option<u32>,
        calls: &'a mut Vec<&'static str>,
    }

    impl KeyEntry<u32, String> for Slot<'_> {
        fn get(&mut self) -> Option<(&u32, &String)> {
            self.calls.push("get");
            self.stored.as_ref().map(|(k, v)| (k, v))
        }

        fn change<R>(&mut self, change: impl FnOnce(&mut String) -> R) -> Option<R> {
            self.calls.push("change");
            self.stored.as_mut().map(|(_, v)| change(v))
        }

        fn set(self, value: String) -> Option<String> {
            self.calls.push("set");
            let key = match self.stored.take() {
                Some((key, old)) => {
                    *self.stored = Some((key, value));
                    return Some(old);
                }
                None => self.key.expect("an owned key"),
            };
            *self.stored = Some((key, value));
            None
        }

        fn remove(self) -> Option<String> {
            self.calls.push("remove");
            self.stored.take().map(|(_, v)| v)
        }
    }

    /// Runs `op` on a slot holding `stored`; returns its output, what the slot then holds and the
    /// entry methods the operation called.
    fn run<O: EntryOp<u32, String>>(
        stored: Option<&str>,
        op: O,
    ) -> (O::Output, Option<String>, Vec<&'static str>) {
        let mut slot = stored.map(|v| (7, v.to_string()));
        let mut calls = Vec::new();
        let entry = Slot {
            stored: &mut slot,
            key: Some(7),
            calls: &mut calls,
        };
        let output = op.run(entry);
        (output, slot.map(|(_, v)| v), calls)
    }

    #[test]
    fn insert_stores_without_looking_first() {
        let (displaced, now, calls) = run(Some("a"), Insert("b".to_string()));
        assert_eq!(
            (displaced.as_deref(), now.as_deref()),
            (Some("a"), Some("b"))
        );
        assert_eq!(calls, ["set"]);
        assert_eq!(run(None, Insert("b".to_string())).1.as_deref(), Some("b"));
    }

    #[test]
    fn remove_if_removes_only_what_the_closure_approves() {
        let (removed, now, _) = run(Some("a"), RemoveIf(|_: &u32, v: &String| v == "a"));
        assert_eq!((removed.as_deref(), now), (Some("a"), None));
        let (removed, now, calls) = run(Some("a"), RemoveIf(|_: &u32, v: &String| v == "z"));
        assert_eq!((removed, now.as_deref()), (None, Some("a")));
        assert_eq!(calls, ["get"]);
        let (removed, _, calls) = run(None, RemoveIf(|_: &u32, _: &String| true));
        assert_eq!((removed, calls), (None, vec!["get"]));
    }

    #[test]
    fn change_or_insert_makes_only_for_an_absent_key_and_changes_once() {
        let op = |made: &'static str| ChangeOrInsert {
            make: move || made.to_string(),
            change: |v: &mut String| {
                v.push('!');
                v.len()
            },
        };
        let (len, now, calls) = run(Some("ab"), op("unused"));
        assert_eq!((len, now.as_deref()), (3, Some("ab!")));
        assert_eq!(calls, ["get", "change"]);
        let (len, now, calls) = run(None, op("new"));
        assert_eq!((len, now.as_deref()), (4, Some("new!")));
        assert_eq!(calls, ["get", "set"]);
    }

    #[test]
    fn compute_applies_the_chosen_action() {
        let set = |v: Option<&String>| Action::Set(format!("{}+", v.map_or("", |v| v)));
        let (displaced, now, _) = run(Some("a"), Compute(set));
        assert_eq!(
            (displaced.as_deref(), now.as_deref()),
            (Some("a"), Some("a+"))
        );
        let (displaced, now, _) = run(None, Compute(set));
        assert_eq!((displaced, now.as_deref()), (None, Some("+")));
        let (removed, now, _) = run(Some("a"), Compute(|_: Option<&String>| Action::Remove));
        assert_eq!((removed.as_deref(), now), (Some("a"), None));
        let (kept, now, calls) = run(Some("a"), Compute(|_: Option<&String>| Action::Keep));
        assert_eq!((kept, now.as_deref()), (None, Some("a")));
        assert_eq!(calls, ["get"]);
    }

    #[test]
    fn change_leaves_an_absent_key_absent() {
        let (out, now, _) = run(None, Change(|v: &mut String| v.len()));
        assert_eq!((out, now), (None, None));
        let (out, now, _) = run(Some("abc"), Change(|v: &mut String| v.len()));
        assert_eq!((out, now.as_deref()), (Some(3), Some("abc")));
    }
}
