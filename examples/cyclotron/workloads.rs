//! The two workloads: `chain` (nascheme's cyclotron / Tim Peters' queue
//! cycles) and `tree` (a B-tree whose entries are deleted and re-inserted),
//! written once against [`Runtime`], which each runtime implements.

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
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What the workloads do to a runtime's object graph. `Ref` is a reference
/// the workload holds: in runtimes with rooted handles (dumpster, gc-arena)
/// holding it keeps the object alive; the toy's are raw pointers, kept alive
/// by `hold` (its roots) or by reachability.
pub trait Runtime {
    type Ref: Clone;
    /// A new object owning `payload` bytes (written, so resident).
    fn alloc(&mut self, payload: usize) -> Self::Ref;
    /// Appends an edge `from -> to` (with its key, in a tree node).
    fn push(&mut self, from: &Self::Ref, key: Option<u64>, to: &Self::Ref);
    /// The smallest key of a full tree node.
    fn first_key(&mut self, node: &Self::Ref) -> u64;
    /// The child of inner node `node` whose subtree holds (or held) `key`.
    fn child_for(&mut self, node: &Self::Ref, key: u64) -> Self::Ref;
    /// Takes `key` and its value out of `leaf`.
    fn remove(&mut self, leaf: &Self::Ref, key: u64) -> Self::Ref;
    /// Puts `key` and `value` back into `leaf`.
    fn insert(&mut self, leaf: &Self::Ref, key: u64, value: &Self::Ref);
    /// Adds `r` to the workload's roots; `release` empties them.
    fn hold(&mut self, r: &Self::Ref);
    fn release(&mut self);
    /// The workload dropped its last reference to a chain of `len` objects.
    fn drop_chain(&mut self, head: Self::Ref, len: usize, cyclic: bool);
    /// Where a collection may happen; every object still used is held.
    fn safepoint(&mut self);
}

/// One chain of `shape.cycle` objects, the first owning the payload; closed
/// into a cycle with probability `cyclic_fraction`.
struct Chain<R> {
    head: R,
    cyclic: bool,
}

fn new_chain<R: Runtime>(rt: &mut R, shape: &Shape, rng: &mut Rng) -> Chain<R::Ref> {
    let head = rt.alloc(shape.extra);
    let mut tail = head.clone();
    for _ in 1..shape.cycle {
        let next = rt.alloc(0);
        rt.push(&tail, None, &next);
        tail = next;
    }
    let cyclic = rng.chance(shape.cyclic_fraction);
    if cyclic {
        rt.push(&tail, None, &head);
    }
    Chain { head, cyclic }
}

/// `chain`: make chains, hold them (as roots) until `live` objects are held,
/// then drop them all.
pub fn run_chain<R: Runtime>(rt: &mut R, shape: &Shape, rng: &mut Rng, sampler: &mut Sampler) {
    let mut held: Vec<Chain<R::Ref>> = Vec::new();
    let mut made = 0;
    while made < shape.total {
        let chain = new_chain(rt, shape, rng);
        rt.hold(&chain.head);
        held.push(chain);
        made += shape.cycle;
        if held.len() * shape.cycle >= shape.live {
            rt.release();
            for chain in held.drain(..) {
                rt.drop_chain(chain.head, shape.cycle, chain.cyclic);
            }
        }
        rt.safepoint();
        sampler.tick(made);
    }
}

/// `tree`: a B-tree (branching 16) of `live / cycle` keys whose values are
/// chains; each round deletes 20% of the keys, then re-inserts them with new
/// values. Deletion does not rebalance, and a deleted key returns to the leaf
/// it left (separators never change), so no leaf overflows.
pub fn run_tree<R: Runtime>(rt: &mut R, shape: &Shape, rng: &mut Rng, sampler: &mut Sampler) {
    let keys = (shape.live / shape.cycle).max(1) as u64;
    let mut made = 0;
    let mut cyclic = Vec::with_capacity(keys as usize);
    let mut level = Vec::new();
    for first in (0..keys).step_by(BRANCHING) {
        let leaf = rt.alloc(0);
        for key in first..(first + BRANCHING as u64).min(keys) {
            let value = new_chain(rt, shape, rng);
            made += shape.cycle;
            cyclic.push(value.cyclic);
            rt.push(&leaf, Some(key), &value.head);
        }
        level.push(leaf);
    }
    let mut height = 0;
    while level.len() > 1 {
        level = level.chunks(BRANCHING).map(|children| new_inner(rt, children)).collect();
        height += 1;
    }
    let root = level.pop().expect("at least one leaf");
    rt.hold(&root);

    let churn = (keys as usize * CHURN_PERCENT / 100).max(1);
    let mut victims = Vec::with_capacity(churn);
    while made < shape.total {
        victims.clear();
        victims.extend((0..churn).map(|_| rng.next() % keys));
        victims.sort_unstable();
        victims.dedup();
        for &key in &victims {
            let leaf = leaf_for(rt, &root, height, key);
            let head = rt.remove(&leaf, key);
            drop(leaf);
            rt.drop_chain(head, shape.cycle, cyclic[key as usize]);
            rt.safepoint();
            sampler.tick(made);
        }
        for &key in &victims {
            let value = new_chain(rt, shape, rng);
            made += shape.cycle;
            cyclic[key as usize] = value.cyclic;
            let leaf = leaf_for(rt, &root, height, key);
            rt.insert(&leaf, key, &value.head);
            drop((leaf, value));
            rt.safepoint();
            sampler.tick(made);
        }
    }
}

/// An inner node over `children` (full tree nodes, in key order), keyed by
/// each child's smallest key.
fn new_inner<R: Runtime>(rt: &mut R, children: &[R::Ref]) -> R::Ref {
    let parent = rt.alloc(0);
    for child in children {
        let first = rt.first_key(child);
        rt.push(&parent, Some(first), child);
    }
    parent
}

/// The leaf at depth `height` under `root` that holds, or held, `key`.
fn leaf_for<R: Runtime>(rt: &mut R, root: &R::Ref, height: usize, key: u64) -> R::Ref {
    let mut node = root.clone();
    for _ in 0..height {
        node = rt.child_for(&node, key);
    }
    node
}

/// The index in a node's sorted `keys` of the child or entry for `key`.
pub fn child_index(keys: &[u64], key: u64) -> usize {
    keys.partition_point(|&k| k <= key).saturating_sub(1)
}
