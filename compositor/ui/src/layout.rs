//! The layout as data: a tree of splits, tab groups and panes, each pane naming the shell's key
//! for the app view it holds. It is what `ctl layout get` prints and what a saved workspace
//! holds; it converts to and from egui_tiles' tree, whose ids are not stable across runs.

use serde::{Deserialize, Serialize};

/// Which way a split lays out its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Left to right.
    Horizontal,
    /// Top to bottom.
    Vertical,
}

/// One node of the layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LayoutNode {
    /// One app view.
    Pane {
        /// The shell's key for it.
        key: u64,
    },
    /// Tabs; `active` is the index of the one shown.
    Tabs {
        /// The tabs, in order.
        children: Vec<LayoutNode>,
        /// Which is shown.
        active: usize,
    },
    /// Children side by side (or stacked), each with its share of the space.
    Split {
        /// Which way.
        direction: Direction,
        /// The children, in order.
        children: Vec<LayoutNode>,
        /// Each child's share (relative weights).
        shares: Vec<f32>,
    },
}

impl LayoutNode {
    /// Every pane key, in order.
    pub fn keys(&self) -> Vec<u64> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect(&self, out: &mut Vec<u64>) {
        match self {
            Self::Pane { key } => out.push(*key),
            Self::Tabs { children, .. } | Self::Split { children, .. } => {
                for c in children {
                    c.collect(out);
                }
            }
        }
    }

    /// The same layout with every key passed through `f`; panes it maps to `None` are dropped,
    /// and containers left empty with them.
    pub fn map_keys(&self, f: &mut impl FnMut(u64) -> Option<u64>) -> Option<LayoutNode> {
        match self {
            Self::Pane { key } => f(*key).map(|key| Self::Pane { key }),
            Self::Tabs { children, active } => {
                let kept: Vec<(usize, LayoutNode)> =
                    children.iter().enumerate().filter_map(|(i, c)| c.map_keys(f).map(|n| (i, n))).collect();
                if kept.is_empty() {
                    return None;
                }
                let active = kept.iter().position(|(i, _)| i == active).unwrap_or(0);
                Some(Self::Tabs { children: kept.into_iter().map(|(_, n)| n).collect(), active })
            }
            Self::Split { direction, children, shares } => {
                let kept: Vec<(LayoutNode, f32)> = children
                    .iter()
                    .zip(shares.iter().copied().chain(std::iter::repeat(1.0)))
                    .filter_map(|(c, s)| c.map_keys(f).map(|n| (n, s)))
                    .collect();
                if kept.is_empty() {
                    return None;
                }
                let (children, shares) = kept.into_iter().unzip();
                Some(Self::Split { direction: *direction, children, shares })
            }
        }
    }
}

/// A pane of the live tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Pane {
    pub(crate) key: u64,
}

/// Describes the live tree (`None`: nothing open).
pub(crate) fn describe(tree: &egui_tiles::Tree<Pane>) -> Option<LayoutNode> {
    describe_tile(&tree.tiles, tree.root?)
}

fn describe_tile(tiles: &egui_tiles::Tiles<Pane>, id: egui_tiles::TileId) -> Option<LayoutNode> {
    use egui_tiles::{Container, LinearDir, Tile};
    match tiles.get(id)? {
        Tile::Pane(p) => Some(LayoutNode::Pane { key: p.key }),
        Tile::Container(Container::Tabs(t)) => {
            let children: Vec<LayoutNode> = t.children.iter().filter_map(|c| describe_tile(tiles, *c)).collect();
            let active = t.active.and_then(|a| t.children.iter().position(|c| *c == a)).unwrap_or(0);
            (!children.is_empty()).then_some(LayoutNode::Tabs { children, active })
        }
        Tile::Container(Container::Linear(l)) => {
            let mut children = Vec::new();
            let mut shares = Vec::new();
            for c in &l.children {
                if let Some(n) = describe_tile(tiles, *c) {
                    children.push(n);
                    shares.push(l.shares[*c]);
                }
            }
            let direction = match l.dir {
                LinearDir::Horizontal => Direction::Horizontal,
                LinearDir::Vertical => Direction::Vertical,
            };
            (!children.is_empty()).then_some(LayoutNode::Split { direction, children, shares })
        }
        Tile::Container(Container::Grid(g)) => {
            // The shell never makes grids; should one appear, it reads as a row.
            let children: Vec<LayoutNode> = g.children().filter_map(|c| describe_tile(tiles, *c)).collect();
            let shares = vec![1.0; children.len()];
            (!children.is_empty()).then_some(LayoutNode::Split { direction: Direction::Horizontal, children, shares })
        }
    }
}

/// Builds a live tree from a description. Every pane is put in a tab group of its own if it is
/// not in one already (the shell's tiles always have a tab bar).
pub(crate) fn build(id: egui::Id, node: &LayoutNode) -> egui_tiles::Tree<Pane> {
    let mut tiles = egui_tiles::Tiles::default();
    let root = build_tile(&mut tiles, node, false);
    egui_tiles::Tree::new(id, root, tiles)
}

fn build_tile(tiles: &mut egui_tiles::Tiles<Pane>, node: &LayoutNode, in_tabs: bool) -> egui_tiles::TileId {
    use egui_tiles::{Container, Linear, LinearDir, Tabs};
    match node {
        LayoutNode::Pane { key } => {
            let pane = tiles.insert_pane(Pane { key: *key });
            if in_tabs { pane } else { tiles.insert_tab_tile(vec![pane]) }
        }
        LayoutNode::Tabs { children, active } => {
            let ids: Vec<_> = children.iter().map(|c| build_tile(tiles, c, true)).collect();
            let mut tabs = Tabs::new(ids.clone());
            tabs.active = ids.get(*active).or(ids.first()).copied();
            tiles.insert_container(Container::Tabs(tabs))
        }
        LayoutNode::Split { direction, children, shares } => {
            let ids: Vec<_> = children.iter().map(|c| build_tile(tiles, c, false)).collect();
            let dir = match direction {
                Direction::Horizontal => LinearDir::Horizontal,
                Direction::Vertical => LinearDir::Vertical,
            };
            let mut linear = Linear::new(dir, ids.clone());
            for (id, share) in ids.iter().zip(shares.iter().copied().chain(std::iter::repeat(1.0))) {
                linear.shares.set_share(*id, if share.is_finite() && share > 0.0 { share } else { 1.0 });
            }
            tiles.insert_container(Container::Linear(linear))
        }
    }
}

#[cfg(test)]
mod tests;
