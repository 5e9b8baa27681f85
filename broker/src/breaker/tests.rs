use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn backoff_doubles_and_caps_with_full_jitter() {
    let p = RetryPolicy { attempts: 5, base_delay: ms(10), max_delay: ms(50) };
    for (attempt, ceiling) in [(1, 10), (2, 20), (3, 40), (4, 50), (40, 50)] {
        let top = p.delay(attempt, 0.999_999);
        assert!(top <= ms(ceiling) && top >= ms(ceiling).mul_f64(0.999), "attempt {attempt}: {top:?}");
        assert_eq!(p.delay(attempt, 0.0), Duration::ZERO);
        assert!(p.delay(attempt, 0.5) <= ms(ceiling));
    }
    let mut j = Jitter::new(7);
    let samples: Vec<f64> = (0..1000).map(|_| j.unit()).collect();
    assert!(samples.iter().all(|u| (0.0..1.0).contains(u)));
    let mean = samples.iter().sum::<f64>() / 1000.0;
    assert!((0.4..0.6).contains(&mean), "mean {mean}");
}

#[test]
fn breaker_opens_probes_and_closes() {
    let mut b = CircuitBreaker::new(BreakerPolicy { failure_threshold: 3, cooldown: ms(100) });
    let t0 = Timestamp(1_000_000);
    for _ in 0..2 {
        assert_eq!(b.admit(t0), Ok(()));
        b.failure(t0);
    }
    assert_eq!(b.state(), BreakerState::Closed { failures: 2 });
    b.failure(t0);
    assert_eq!(b.admit(t0), Err(ms(100)));
    assert_eq!(b.admit(t0.plus(ms(40))), Err(ms(60)));
    // Cool-down over: one probe goes through, the next caller fails fast.
    assert_eq!(b.admit(t0.plus(ms(100))), Ok(()));
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.admit(t0.plus(ms(101))).is_err());
    // The probe fails: open again for a full cool-down.
    b.failure(t0.plus(ms(102)));
    assert_eq!(b.admit(t0.plus(ms(150))), Err(ms(52)));
    assert_eq!(b.admit(t0.plus(ms(202))), Ok(()));
    b.success();
    assert!(b.is_idle());
    assert_eq!(b.admit(t0.plus(ms(203))), Ok(()));
}
