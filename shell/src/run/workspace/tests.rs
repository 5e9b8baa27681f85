use compositor::{Direction, WindowSnapshot};

use super::*;

fn tabs(keys: &[u64]) -> LayoutNode {
    LayoutNode::Tabs { children: keys.iter().map(|k| LayoutNode::Pane { key: *k }).collect(), active: 0 }
}

fn window(no: u32, tree: Option<LayoutNode>, position: Option<(i32, i32)>) -> WindowSnapshot {
    WindowSnapshot { window: no, tree, bounds: Vec::new(), maximized: None, size: (800, 600), position, scale: 1.0 }
}

fn app(key: u64) -> Option<Slot> {
    // Instance 9's app has gone.
    (key != 9).then(|| Slot { app: format!("app{key}"), channel: None, state: None })
}

#[test]
fn every_window_is_kept_with_slots_numbered_across_them() {
    let main = LayoutNode::Split {
        direction: Direction::Horizontal,
        children: vec![tabs(&[7, 9]), tabs(&[3])],
        shares: vec![1.0, 2.0],
    };
    let snap = LayoutSnapshot {
        windows: vec![
            window(0, Some(main), Some((0, 0))),
            window(4, Some(tabs(&[5])), Some((100, 50))),
            window(6, Some(tabs(&[9])), None),
        ],
    };
    let ws = from_snapshot(&snap, app);
    assert_eq!(ws.version, 2);
    let apps: Vec<&str> = ws.slots.iter().map(|s| s.app.as_str()).collect();
    assert_eq!(apps, ["app7", "app3", "app5"]);
    assert_eq!(ws.keys(), [0, 1, 2]);
    assert_eq!(ws.windows.len(), 1, "a window of gone apps only is left out");
    assert_eq!((ws.windows[0].position, ws.windows[0].size), (Some((100, 50)), Some((800, 600))));
    let text = serde_json::to_string(&ws).unwrap();
    assert_eq!(serde_json::from_str::<Workspace>(&text).unwrap(), ws);
}

#[test]
fn one_window_is_written_in_the_first_format() {
    let snap = LayoutSnapshot { windows: vec![window(0, Some(tabs(&[1, 2])), None)] };
    let value = serde_json::to_value(from_snapshot(&snap, app)).unwrap();
    assert_eq!(value["version"], 1);
    assert!(value.get("windows").is_none(), "{value}");
    // And a workspace from before windows reads.
    let old = r#"{"version":1,"window":[1280,800],"layout":{"kind":"pane","key":0},"slots":[{"app":"a"}]}"#;
    let ws: Workspace = serde_json::from_str(old).unwrap();
    assert!(ws.windows.is_empty());
    assert_eq!(ws.keys(), [0]);
}
