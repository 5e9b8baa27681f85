use super::*;
use shell::host::procs::memory_of;

#[test]
fn windows_share_the_screen_in_a_grid() {
    assert_eq!(tile_size(1), SCREEN);
    assert_eq!(tile_size(6), (640, 540));
    assert_eq!(tile_size(10), (480, 360));
    assert_eq!(tile_size(20), (384, 270));
}

#[test]
fn a_tree_is_measured_whole() {
    let me = std::process::id();
    let procs = trees(&[me, me]);
    assert_eq!(procs.iter().filter(|p| p.pid == me).count(), 1);
    assert!(procs.iter().map(memory_of).sum::<u64>() > 0 && cpu_ns(&procs) > 0);
    assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
    assert!((mib(3 << 19) - 1.5).abs() < f64::EPSILON);
}
