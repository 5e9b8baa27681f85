//! The topic router: a trie of pattern segments with a cache of match results.
//!
//! Each trie node has literal children, at most one `*` child and at most one `#` child, and
//! the keys of the patterns that end there. Matching walks the topic's segments once; a `#`
//! node tries every split of the remaining segments, and each (node, position) pair it reaches
//! is visited once, so hostile patterns like `#.a.#.a.#.a` stay polynomial.
//!
//! Results are cached per topic and the whole cache is dropped on every insert or remove:
//! subscriptions change rarely next to the message rate, and a clear is O(1) amortised.
//! Removing a pattern prunes every node it alone needed, so the trie never leaks.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::topic::{MAX_SEGMENTS, Pattern, Segment, Topic};

type NodeId = u32;
const ROOT: NodeId = 0;

#[derive(Debug)]
struct Node<K> {
    literal: FxHashMap<Box<str>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    keys: Vec<K>,
}

impl<K> Node<K> {
    fn new() -> Self {
        Self { literal: FxHashMap::default(), star: None, hash: None, keys: Vec::new() }
    }

    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.star.is_none() && self.hash.is_none() && self.keys.is_empty()
    }
}

/// Cache and trie counters, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Live trie nodes, the root included.
    pub nodes: usize,
    /// Patterns inserted and not removed.
    pub patterns: usize,
    /// Topics whose match result is cached.
    pub cached_topics: usize,
    /// Lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups that walked the trie.
    pub cache_misses: u64,
}

/// A wildcard topic router mapping patterns to keys of type `K`.
#[derive(Debug)]
pub struct Router<K> {
    nodes: Vec<Node<K>>,
    free: Vec<NodeId>,
    patterns: usize,
    cache: FxHashMap<Topic, Arc<[K]>>,
    cache_capacity: usize,
    cache_hits: u64,
    cache_misses: u64,
    visited: Vec<(NodeId, u8)>,
}

impl<K: Copy + Ord> Router<K> {
    /// An empty router whose cache holds at most `cache_capacity` topics (0 disables it).
    pub fn new(cache_capacity: usize) -> Self {
        Self {
            nodes: vec![Node::new()],
            free: Vec::new(),
            patterns: 0,
            cache: FxHashMap::default(),
            cache_capacity,
            cache_hits: 0,
            cache_misses: 0,
            visited: Vec::new(),
        }
    }

    fn alloc(&mut self) -> NodeId {
        match self.free.pop() {
            Some(id) => id,
            None => {
                self.nodes.push(Node::new());
                // The trie has at most (patterns x MAX_SEGMENTS) nodes; u32 is plenty.
                NodeId::try_from(self.nodes.len() - 1).unwrap_or(NodeId::MAX)
            }
        }
    }

    fn child(&self, node: NodeId, seg: &Segment) -> Option<NodeId> {
        let n = &self.nodes[node as usize];
        match seg {
            Segment::Literal(s) => n.literal.get(&**s).copied(),
            Segment::Star => n.star,
            Segment::Hash => n.hash,
        }
    }

    /// Adds `key` under `pattern`. Adding the same pair twice stores it twice.
    pub fn insert(&mut self, pattern: &Pattern, key: K) {
        let mut node = ROOT;
        for seg in pattern.segments() {
            node = match self.child(node, seg) {
                Some(c) => c,
                None => {
                    let c = self.alloc();
                    let n = &mut self.nodes[node as usize];
                    match seg {
                        Segment::Literal(s) => {
                            n.literal.insert(s.clone(), c);
                        }
                        Segment::Star => n.star = Some(c),
                        Segment::Hash => n.hash = Some(c),
                    }
                    c
                }
            };
        }
        self.nodes[node as usize].keys.push(key);
        self.patterns += 1;
        self.cache.clear();
    }

    /// Removes one `key` stored under `pattern` and prunes nodes left empty.
    /// Returns whether it was there.
    pub fn remove(&mut self, pattern: &Pattern, key: K) -> bool {
        let mut path: Vec<NodeId> = Vec::with_capacity(pattern.segments().len() + 1);
        path.push(ROOT);
        let mut node = ROOT;
        for seg in pattern.segments() {
            match self.child(node, seg) {
                Some(c) => {
                    node = c;
                    path.push(c);
                }
                None => return false,
            }
        }
        let keys = &mut self.nodes[node as usize].keys;
        let Some(pos) = keys.iter().position(|k| *k == key) else {
            return false;
        };
        keys.swap_remove(pos);
        self.patterns -= 1;
        self.cache.clear();
        // Walk back up, detaching every node that no longer holds anything.
        for (depth, seg) in pattern.segments().iter().enumerate().rev() {
            let id = path[depth + 1];
            if !self.nodes[id as usize].is_empty() {
                break;
            }
            let parent = &mut self.nodes[path[depth] as usize];
            match seg {
                Segment::Literal(s) => {
                    parent.literal.remove(&**s);
                }
                Segment::Star => parent.star = None,
                Segment::Hash => parent.hash = None,
            }
            let freed = &mut self.nodes[id as usize];
            // Drop the map's allocation too, so freed nodes hold no memory.
            *freed = Node::new();
            self.free.push(id);
        }
        true
    }

    /// The keys whose patterns match `topic`, sorted and without duplicates, from the cache
    /// when it has them.
    pub fn matches(&mut self, topic: &Topic) -> Arc<[K]> {
        if let Some(hit) = self.cache.get(topic.as_str()) {
            self.cache_hits += 1;
            return Arc::clone(hit);
        }
        self.cache_misses += 1;
        let mut out = Vec::new();
        self.matches_uncached(topic, &mut out);
        let result: Arc<[K]> = out.into();
        if self.cache_capacity > 0 {
            if self.cache.len() >= self.cache_capacity {
                self.cache.clear();
            }
            self.cache.insert(topic.clone(), Arc::clone(&result));
        }
        result
    }

    /// Walks the trie for `topic` without touching the cache; `out` receives the keys sorted
    /// and without duplicates.
    pub fn matches_uncached(&mut self, topic: &Topic, out: &mut Vec<K>) {
        out.clear();
        // Reserved topics are never routed; no wildcard reaches one.
        if topic.is_reserved() {
            return;
        }
        let mut segs = [""; MAX_SEGMENTS];
        let mut len = 0;
        for s in topic.segments().take(MAX_SEGMENTS) {
            segs[len] = s;
            len += 1;
        }
        self.visited.clear();
        let mut walk = Walk { nodes: &self.nodes, segs: &segs[..len], visited: &mut self.visited, out };
        walk.node(ROOT, 0);
        if walk.out.len() > 1 {
            walk.out.sort_unstable();
            walk.out.dedup();
        }
    }

    /// Counters and sizes.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            nodes: self.nodes.len() - self.free.len(),
            patterns: self.patterns,
            cached_topics: self.cache.len(),
            cache_hits: self.cache_hits,
            cache_misses: self.cache_misses,
        }
    }
}

struct Walk<'a, K> {
    nodes: &'a [Node<K>],
    segs: &'a [&'a str],
    visited: &'a mut Vec<(NodeId, u8)>,
    out: &'a mut Vec<K>,
}

impl<K: Copy> Walk<'_, K> {
    /// Matches the topic's segments from `pos` on against the patterns below `id`.
    fn node(&mut self, id: NodeId, pos: usize) {
        let n = &self.nodes[id as usize];
        if pos == self.segs.len() {
            self.out.extend_from_slice(&n.keys);
        } else {
            if let Some(&c) = n.literal.get(self.segs[pos]) {
                self.node(c, pos + 1);
            }
            if let Some(c) = n.star {
                self.node(c, pos + 1);
            }
        }
        if let Some(h) = n.hash {
            // `#` swallows zero or more segments: continue below it from every later position.
            for next in pos..=self.segs.len() {
                // Positions fit in u8: topics have at most MAX_SEGMENTS (32) segments.
                let state = (h, next as u8);
                if self.visited.contains(&state) {
                    continue;
                }
                self.visited.push(state);
                self.node(h, next);
            }
        }
    }
}

#[cfg(test)]
mod tests;
