use std::time::Duration;

use tokio::time::Instant;

use super::Beats;

#[tokio::test(start_paused = true)]
async fn monitors_started_apart_beat_together_and_an_early_beat_falls_back_in_step() {
    let period = Duration::from_secs(1);
    let mut first = Beats::new(period);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = Beats::new(period);
    first.tick().await;
    let a = Instant::now();
    second.tick().await;
    assert_eq!(Instant::now(), a, "the second monitor's first beat is the first's");
    first.tick().await;
    assert_eq!(Instant::now() - a, period);
    // A beat asked for at once comes at once; the next is back on the shared instants.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = Instant::now();
    second.now();
    second.tick().await;
    assert_eq!(Instant::now(), asked);
    second.tick().await;
    assert_eq!(Instant::now() - a, period * 2);
    first.tick().await;
    assert_eq!(Instant::now() - a, period * 2, "both on the same instant again");
}
