//! Walks over a kept root (a snapshot's), which no write changes: borrowed ([`Iter`]) or
//! holding counts of the nodes still to visit ([`Leaves`]), for iteration in chunks.

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

/// The leaves below a kept root, each subtree still to visit held by a count of its own, so a
/// cursor outlives any borrow and splits for parallel iteration.
pub struct Leaves<K, V> {
    pending: Vec<Edge<K, V>>,
}

impl<K, V> Leaves<K, V> {
    /// The leaves below `root`.
    ///
    /// # Safety
    /// No write changes a node below `root` any more (a snapshot's root).
    pub(crate) unsafe fn of(root: &Root<K, V>) -> Self {
        // SAFETY: as the caller promises.
        let mut pending: Vec<_> = root
            .slots()
            .iter()
            .filter_map(|s| unsafe { s.share() })
            .collect();
        pending.reverse();
        Leaves { pending }
    }

    /// The next leaf, depth first.
    pub(crate) fn next_leaf(&mut self) -> Option<Arc<Leaf<K, V>>> {
        loop {
            match self.pending.pop()? {
                Edge::Leaf(leaf) => return Some(leaf),
                Edge::Branch(branch) => self.open(&branch),
            }
        }
    }

    /// Puts `branch`'s children on the stack, first child on top.
    fn open(&mut self, branch: &Inner<K, V>) {
        // SAFETY: the cursor's nodes are below a root no write changes (`of`), and the cursor
        // holds a count of `branch`.
        let children = branch
            .slots()
            .iter()
            .rev()
            .filter_map(|s| unsafe { s.share() });
        self.pending.extend(children);
    }

    /// Takes about half of what is left into a cursor of its own, if there are two subtrees
    /// or more (a lone branch is opened first).
    pub(crate) fn split(&mut self) -> Option<Self> {
        if let [Edge::Branch(_)] = self.pending.as_slice()
            && let Some(Edge::Branch(branch)) = self.pending.pop()
        {
            self.open(&branch);
        }
        let half = self.pending.len() / 2;
        (half > 0).then(|| Leaves {
            pending: self.pending.drain(..half).collect(),
        })
    }
}
