//! RFC 6962 Merkle tree hashing: leaf `SHA-256(0x00 || data)`, node `SHA-256(0x01 || left ||
//! right)`, the tree split at the largest power of two below its size.
//!
//! [`Frontier`] keeps only the roots of the perfect subtrees along the right edge, so appending
//! a leaf and computing the root are O(log n) however long the log grows.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf holding `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of an empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The root of a tree over `leaves` (leaf hashes), by RFC 6962's recursive definition; the
/// reference [`Frontier`] is tested against.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The right edge of a growing tree: perfect subtrees of strictly decreasing height.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(u8, Hash)>,
}

impl Frontier {
    /// Leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = (0u8, leaf);
        while let Some(&(height, left)) = self.nodes.last() {
            if height != node.0 {
                break;
            }
            self.nodes.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The tree's root.
    pub fn root(&self) -> Hash {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else { return empty_root() };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// Serialises as `u64 size | (u8 height, 32-byte hash)*`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.size.to_le_bytes().to_vec();
        for (h, hash) in &self.nodes {
            out.push(*h);
            out.extend_from_slice(hash);
        }
        out
    }

    /// Reads what [`Frontier::encode`] wrote; `None` if it does not describe a valid frontier.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let size = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let rest = &bytes[8..];
        if !rest.len().is_multiple_of(33) {
            return None;
        }
        let nodes: Vec<(u8, Hash)> = rest.chunks(33).map(|c| (c[0], c[1..].try_into().unwrap_or([0; 32]))).collect();
        // Heights must be the set bits of `size`, highest first.
        let expect: Vec<u8> = (0..64u8).rev().filter(|b| size >> b & 1 == 1).collect();
        let got: Vec<u8> = nodes.iter().map(|(h, _)| *h).collect();
        (expect == got).then_some(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests;
