//! The two workloads: `chain` (nascheme's cyclotron / Tim Peters' queue
//! cycles) and `tree` (a B-tree whose entries are deleted and re-inserted).

use gcmalloc::GcTrigger;

use crate::heap::{obj, Gc, Heap, Mutator};
use crate::metrics::Sampler;

/// What one run allocates.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Objects per chain (per entry value in `tree`).
    pub cycle: usize,
    /// Payload bytes owned by each chain.
    pub extra: usize,
    /// Objects kept reachable at most (`chain`: the holder is cleared when it
    /// holds this many; `tree`: entries x cycle).
    pub live: usize,
    /// Fraction of chains closed into a cycle; the others are freed at once
    /// when dropped, as reference counting would.
    pub cyclic_fraction: f64,
    /// Objects to allocate in all.
    pub total: usize,
}

/// Branching factor of the `tree` workload's B-tree.
const BRANCHING: usize = 16;
/// Fraction of the tree's keys deleted, then re-inserted, per round.
const CHURN_PERCENT: usize = 20;

/// A small deterministic generator (xorshift64*), so that every policy
/// runs the very same workload.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// One chain of `shape.cycle` objects, the first owning the payload; closed
/// into a cycle with probability `cyclic_fraction`.
struct Chain {
    head: Gc,
    cyclic: bool,
}

fn new_chain(heap: &mut Heap, trigger: &GcTrigger, shape: &Shape, rng: &mut Rng) -> Chain {
    let head = heap.alloc(trigger, shape.extra);
    let mut tail = head;
    for _ in 1..shape.cycle {
        let next = heap.alloc(trigger, 0);
        // SAFETY: `tail` was allocated just now and is unaliased.
        unsafe { obj(tail) }.edges.push(next);
        tail = next;
    }
    let cyclic = rng.chance(shape.cyclic_fraction);
    if cyclic {
        // SAFETY: as above.
        unsafe { obj(tail) }.edges.push(head);
    }
    Chain { head, cyclic }
}

/// Drops the workload's last reference to `chain`.
fn drop_chain(heap: &mut Heap, shape: &Shape, chain: Chain) {
    if chain.cyclic {
        heap.unrooted(shape.cycle);
    } else {
        // SAFETY: an open chain is acyclic, and this was its only reference.
        unsafe { heap.free_acyclic(chain.head) };
    }
}

/// `chain`: make chains, hold them (as roots) until `live` objects are held,
/// then drop them all.
pub fn run_chain(m: &mut impl Mutator, trigger: &GcTrigger, shape: &Shape, rng: &mut Rng, sampler: &mut Sampler) {
    let mut cyclic: Vec<bool> = Vec::new();
    let mut made = 0;
    while made < shape.total {
        let heap = m.heap();
        let chain = new_chain(heap, trigger, shape, rng);
        heap.roots.push(chain.head);
        cyclic.push(chain.cyclic);
        made += shape.cycle;
        if heap.roots.len() * shape.cycle >= shape.live {
            let holder = std::mem::take(&mut heap.roots);
            for (&head, cyclic) in holder.iter().zip(cyclic.drain(..)) {
                drop_chain(heap, shape, Chain { head, cyclic });
            }
            heap.roots = holder;
            heap.roots.clear();
        }
        m.safepoint(trigger);
        sampler.tick(made);
    }
}

/// `tree`: a B-tree (branching 16) of `live / cycle` keys whose values are
/// chains; each round deletes 20% of the keys, then re-inserts them with new
/// values. Deletion does not rebalance, and a deleted key returns to the leaf
/// it left (separators never change), so no leaf overflows.
pub fn run_tree(m: &mut impl Mutator, trigger: &GcTrigger, shape: &Shape, rng: &mut Rng, sampler: &mut Sampler) {
    let heap = m.heap();
    let keys = (shape.live / shape.cycle).max(1) as u64;
    let mut made = 0;
    let mut cyclic = Vec::with_capacity(keys as usize);
    let mut level = Vec::new();
    for first in (0..keys).step_by(BRANCHING) {
        let leaf = heap.alloc(trigger, 0);
        for key in first..(first + BRANCHING as u64).min(keys) {
            let value = new_chain(heap, trigger, shape, rng);
            made += shape.cycle;
            cyclic.push(value.cyclic);
            // SAFETY: `leaf` is new and unaliased.
            let node = unsafe { obj(leaf) };
            node.keys.push(key);
            node.edges.push(value.head);
        }
        level.push(leaf);
    }
    let mut height = 0;
    while level.len() > 1 {
        level = level.chunks(BRANCHING).map(|children| new_inner(heap, trigger, children)).collect();
        height += 1;
    }
    let tree = Tree { root: level[0], height };
    heap.roots.push(tree.root);

    let churn = (keys as usize * CHURN_PERCENT / 100).max(1);
    let mut victims = Vec::with_capacity(churn);
    while made < shape.total {
        victims.clear();
        victims.extend((0..churn).map(|_| rng.next() % keys));
        victims.sort_unstable();
        victims.dedup();
        for &key in &victims {
            let head = tree.remove(key);
            drop_chain(m.heap(), shape, Chain { head, cyclic: cyclic[key as usize] });
            m.safepoint(trigger);
            sampler.tick(made);
        }
        for &key in &victims {
            let value = new_chain(m.heap(), trigger, shape, rng);
            made += shape.cycle;
            cyclic[key as usize] = value.cyclic;
            tree.insert(key, value.head);
            m.safepoint(trigger);
            sampler.tick(made);
        }
    }
}

/// An inner node over `children` (live tree nodes, in key order), keyed by
/// each child's smallest key.
fn new_inner(heap: &mut Heap, trigger: &GcTrigger, children: &[Gc]) -> Gc {
    let parent = heap.alloc(trigger, 0);
    for &child in children {
        // SAFETY: the children are live, full (just built) tree nodes.
        let first = unsafe { obj(child) }.keys[0];
        // SAFETY: `parent` is new and unaliased; the borrow above ended.
        let node = unsafe { obj(parent) };
        node.keys.push(first);
        node.edges.push(child);
    }
    parent
}

/// The B-tree: leaves at depth `height` hold keys and their values.
struct Tree {
    root: Gc,
    height: usize,
}

impl Tree {
    /// The leaf that holds, or held, `key`.
    fn leaf_for(&self, key: u64) -> Gc {
        let mut node = self.root;
        for _ in 0..self.height {
            // SAFETY: tree nodes are reachable from the root, hence live.
            let inner = unsafe { obj(node) };
            let i = inner.keys.partition_point(|&k| k <= key).saturating_sub(1);
            node = inner.edges[i];
        }
        node
    }

    fn remove(&self, key: u64) -> Gc {
        // SAFETY: the leaf is a live tree node, and this borrow the only one.
        let leaf = unsafe { obj(self.leaf_for(key)) };
        let i = leaf.keys.binary_search(&key).expect("deleted keys are present");
        leaf.keys.remove(i);
        leaf.edges.remove(i)
    }

    fn insert(&self, key: u64, value: Gc) {
        // SAFETY: as in `remove`.
        let leaf = unsafe { obj(self.leaf_for(key)) };
        let i = leaf.keys.binary_search(&key).expect_err("re-inserted keys are absent");
        debug_assert!(leaf.keys.len() < BRANCHING);
        leaf.keys.insert(i, key);
        leaf.edges.insert(i, value);
    }
}
