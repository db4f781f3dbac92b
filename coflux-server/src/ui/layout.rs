//! The run graph's layout, computed on the server: a layered layout that keeps steps in
//! creation order and never moves a node once placed, so a live run grows without anything
//! jumping around.
//!
//! - A node's **layer** (its column) is the longest path to it over the edges into it; edges
//!   only run from earlier nodes to later ones (a step is created after its caller and after
//!   the steps it waits for), so one pass in creation order finds every layer.
//! - Within a layer, nodes keep **creation order** (rows grow downwards). A node goes to the
//!   row of its first predecessor (its caller) if that row is still free in its layer, else to
//!   the next free row: children start level with their parent, fan-outs grow downwards.
//! - Placement is greedy in creation order, so adding nodes never changes the position of the
//!   ones already placed. The whole pass is O(nodes + edges).
//!
//! ```
//! use coflux_server::ui::layout::{layout, EdgeKind, LayoutInput};
//!
//! // A workflow (0) calling two tasks (1, 2); the second waits for the first.
//! let mut graph = LayoutInput::default();
//! let root = graph.node(&[]);
//! let first = graph.node(&[(root, EdgeKind::Child)]);
//! let second = graph.node(&[(root, EdgeKind::Child), (first, EdgeKind::Dependency)]);
//! let placed = layout(&graph);
//! assert_eq!((placed.nodes[first].layer, placed.nodes[first].row), (1, 0));
//! assert_eq!((placed.nodes[second].layer, placed.nodes[second].row), (2, 0));
//! ```

/// Node width in pixels.
pub const NODE_WIDTH: u32 = 160;
/// Node height in pixels.
pub const NODE_HEIGHT: u32 = 50;
/// Horizontal gap between layers.
pub const LAYER_GAP: u32 = 60;
/// Vertical gap between rows.
pub const ROW_GAP: u32 = 16;
/// Margin around the drawing.
pub const MARGIN: u32 = 20;

/// How two steps are related.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// The source execution called the target (drawn dashed).
    Child,
    /// The target waited for the source's result (drawn solid).
    Dependency,
}

/// The graph to lay out: nodes in creation order, each with the edges into it.
#[derive(Debug, Default, Clone)]
pub struct LayoutInput {
    incoming: Vec<Vec<(usize, EdgeKind)>>,
}

impl LayoutInput {
    /// Adds a node with edges from earlier nodes; returns its index. Edges from itself or
    /// from later nodes are ignored (they cannot happen in a run).
    pub fn node(&mut self, from: &[(usize, EdgeKind)]) -> usize {
        let index = self.incoming.len();
        let edges = from.iter().copied().filter(|(f, _)| *f < index).collect();
        self.incoming.push(edges);
        index
    }

    /// How many nodes it has.
    pub fn len(&self) -> usize {
        self.incoming.len()
    }

    /// Whether it has no nodes.
    pub fn is_empty(&self) -> bool {
        self.incoming.is_empty()
    }
}

/// A placed node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacedNode {
    /// Its column.
    pub layer: u32,
    /// Its row.
    pub row: u32,
    /// Left edge, in pixels.
    pub x: u32,
    /// Top edge, in pixels.
    pub y: u32,
}

/// A drawn edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedEdge {
    /// Source node.
    pub from: usize,
    /// Target node.
    pub to: usize,
    /// Its kind.
    pub kind: EdgeKind,
    /// An SVG path (`M … C …`): a cubic Bézier from the source's right side to the target's
    /// left side.
    pub path: String,
}

/// A laid-out graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The nodes, by index.
    pub nodes: Vec<PlacedNode>,
    /// The edges, in the order of their target, then as given.
    pub edges: Vec<PlacedEdge>,
    /// Width of the drawing.
    pub width: u32,
    /// Height of the drawing.
    pub height: u32,
}

/// Lays out a graph (see the module documentation).
pub fn layout(input: &LayoutInput) -> Layout {
    let mut nodes: Vec<PlacedNode> = Vec::with_capacity(input.len());
    // The next free row of each layer.
    let mut free: Vec<u32> = Vec::new();
    for incoming in &input.incoming {
        let layer = incoming
            .iter()
            .map(|(from, _)| nodes[*from].layer + 1)
            .max()
            .unwrap_or(0);
        let wanted = incoming.first().map_or(0, |(from, _)| nodes[*from].row);
        let layer_index = layer as usize;
        if free.len() <= layer_index {
            free.resize(layer_index + 1, 0);
        }
        let row = wanted.max(free[layer_index]);
        free[layer_index] = row + 1;
        nodes.push(PlacedNode {
            layer,
            row,
            x: MARGIN + layer * (NODE_WIDTH + LAYER_GAP),
            y: MARGIN + row * (NODE_HEIGHT + ROW_GAP),
        });
    }
    let mut edges = Vec::new();
    for (to, incoming) in input.incoming.iter().enumerate() {
        for &(from, kind) in incoming {
            edges.push(PlacedEdge {
                from,
                to,
                kind,
                path: edge_path(&nodes[from], &nodes[to]),
            });
        }
    }
    let layers = free.len() as u32;
    let rows = free.iter().copied().max().unwrap_or(0);
    Layout {
        nodes,
        edges,
        width: 2 * MARGIN + layers * NODE_WIDTH + layers.saturating_sub(1) * LAYER_GAP,
        height: 2 * MARGIN + rows * NODE_HEIGHT + rows.saturating_sub(1) * ROW_GAP,
    }
}

/// A Bézier from the middle of `from`'s right side to the middle of `to`'s left side, its
/// control points half way across horizontally.
fn edge_path(from: &PlacedNode, to: &PlacedNode) -> String {
    let (x1, y1) = (from.x + NODE_WIDTH, from.y + NODE_HEIGHT / 2);
    let (x2, y2) = (to.x, to.y + NODE_HEIGHT / 2);
    let mid = (x1 + x2) / 2;
    format!("M{x1} {y1}C{mid} {y1} {mid} {y2} {x2} {y2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions(layout: &Layout) -> Vec<(u32, u32)> {
        layout.nodes.iter().map(|n| (n.layer, n.row)).collect()
    }

    /// A workflow calling `n` tasks, each task `i > 0` waiting for task `i - 1` when `chain`.
    fn fan_out(n: usize, chain: bool) -> LayoutInput {
        let mut graph = LayoutInput::default();
        let root = graph.node(&[]);
        let mut previous = None;
        for _ in 0..n {
            let mut from = vec![(root, EdgeKind::Child)];
            if let (true, Some(p)) = (chain, previous) {
                from.push((p, EdgeKind::Dependency));
            }
            previous = Some(graph.node(&from));
        }
        graph
    }

    #[test]
    fn ui_layout_golden_positions_of_a_small_run() {
        // root → a, b; a → c; b waits for a; d waits for c and b.
        let mut graph = LayoutInput::default();
        let root = graph.node(&[]);
        let a = graph.node(&[(root, EdgeKind::Child)]);
        let b = graph.node(&[(root, EdgeKind::Child), (a, EdgeKind::Dependency)]);
        let c = graph.node(&[(a, EdgeKind::Child)]);
        let _d = graph.node(&[
            (root, EdgeKind::Child),
            (c, EdgeKind::Dependency),
            (b, EdgeKind::Dependency),
        ]);
        let placed = layout(&graph);
        assert_eq!(
            positions(&placed),
            vec![(0, 0), (1, 0), (2, 0), (2, 1), (3, 0)]
        );
        assert_eq!((placed.nodes[b].x, placed.nodes[b].y), (460, 20));
        assert_eq!((placed.nodes[c].x, placed.nodes[c].y), (460, 86));
        assert_eq!(placed.edges.len(), 7);
        assert_eq!(placed.edges[0].path, "M180 45C210 45 210 45 240 45");
        assert_eq!(
            (placed.width, placed.height),
            (2 * 20 + 4 * 160 + 3 * 60, 2 * 20 + 2 * 50 + 16)
        );
    }

    #[test]
    fn ui_layout_fan_out_stacks_children_in_creation_order() {
        let placed = layout(&fan_out(5, false));
        let rows: Vec<u32> = placed.nodes[1..].iter().map(|n| n.row).collect();
        assert_eq!(rows, vec![0, 1, 2, 3, 4]);
        assert!(placed.nodes[1..].iter().all(|n| n.layer == 1));
    }

    #[test]
    fn ui_layout_adding_steps_never_moves_placed_ones() {
        let mut graph = LayoutInput::default();
        let root = graph.node(&[]);
        let mut before = layout(&graph).nodes;
        for i in 1..200usize {
            // A mix of children of the root, of earlier children, and dependencies.
            let parent = if i % 3 == 0 { i / 2 } else { root };
            let mut from = vec![(parent, EdgeKind::Child)];
            if i % 5 == 0 {
                from.push((i - 1, EdgeKind::Dependency));
            }
            graph.node(&from);
            let after = layout(&graph).nodes;
            assert_eq!(&after[..before.len()], &before[..], "after adding node {i}");
            before = after;
        }
    }

    #[test]
    fn ui_layout_nodes_never_overlap() {
        let mut graph = fan_out(50, true);
        for i in 1..20 {
            graph.node(&[(i, EdgeKind::Child)]);
        }
        let placed = layout(&graph);
        let mut seen = std::collections::HashSet::new();
        for node in &placed.nodes {
            assert!(seen.insert((node.layer, node.row)), "two nodes at {node:?}");
            assert!(node.x + NODE_WIDTH <= placed.width && node.y + NODE_HEIGHT <= placed.height);
        }
    }

    #[test]
    fn ui_layout_edges_from_later_nodes_are_ignored() {
        let mut graph = LayoutInput::default();
        let a = graph.node(&[(5, EdgeKind::Child), (0, EdgeKind::Child)]);
        assert_eq!(layout(&graph).nodes[a].layer, 0);
    }

    #[test]
    fn ui_layout_a_chain_gets_one_layer_per_step() {
        // Each task waits for the one before: layers grow by one per step, rows stay at zero.
        let placed = layout(&fan_out(10_000, true));
        assert_eq!(placed.nodes.last().map(|n| n.layer), Some(10_000));
        assert_eq!(placed.edges.len(), 2 * 10_000 - 1);
    }
}
