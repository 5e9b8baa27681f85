use super::*;

fn sample() -> LayoutNode {
    LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![
            LayoutNode::Tabs { children: vec![LayoutNode::Pane { key: 1 }, LayoutNode::Pane { key: 2 }], active: 1 },
            LayoutNode::Split {
                direction: Direction::Vertical,
                children: vec![
                    LayoutNode::Tabs { children: vec![LayoutNode::Pane { key: 3 }], active: 0 },
                    LayoutNode::Tabs { children: vec![LayoutNode::Pane { key: 4 }], active: 0 },
                ],
                shares: vec![2.0, 1.0],
            },
        ],
        shares: vec![1.0, 1.5],
    }
}

#[test]
fn a_layout_survives_the_round_trip_through_the_live_tree() {
    let node = sample();
    let tree = build(egui::Id::unique("t"), &node);
    assert_eq!(describe(&tree), Some(node.clone()));
    let json = serde_json::to_string(&node).unwrap();
    assert_eq!(serde_json::from_str::<LayoutNode>(&json).unwrap(), node);
}

#[test]
fn bare_panes_get_a_tab_bar() {
    let node = LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![LayoutNode::Pane { key: 7 }, LayoutNode::Pane { key: 8 }],
        shares: vec![1.0, 1.0],
    };
    let tree = build(egui::Id::unique("t"), &node);
    let LayoutNode::Split { children, .. } = describe(&tree).unwrap() else { panic!() };
    assert!(children.iter().all(|c| matches!(c, LayoutNode::Tabs { .. })));
}

#[test]
fn keys_can_be_renamed_and_dropped() {
    let node = sample();
    assert_eq!(node.keys(), [1, 2, 3, 4]);
    let mapped = node.map_keys(&mut |k| (k != 2 && k != 3).then_some(k * 10)).unwrap();
    assert_eq!(mapped.keys(), [10, 40]);
    let LayoutNode::Split { children, shares, .. } = &mapped else { panic!() };
    assert_eq!(shares, &[1.0, 1.5]);
    assert_eq!(children[0], LayoutNode::Tabs { children: vec![LayoutNode::Pane { key: 10 }], active: 0 });
    assert!(node.map_keys(&mut |_| None).is_none());
}

#[test]
fn hostile_shares_are_made_sane() {
    let node = LayoutNode::Split {
        direction: Direction::Vertical,
        children: vec![LayoutNode::Pane { key: 1 }, LayoutNode::Pane { key: 2 }],
        shares: vec![f32::NAN, -3.0],
    };
    let LayoutNode::Split { shares, .. } = describe(&build(egui::Id::unique("t"), &node)).unwrap() else { panic!() };
    assert_eq!(shares, [1.0, 1.0]);
}
