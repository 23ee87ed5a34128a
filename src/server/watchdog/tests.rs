use super::*;

fn entry(w: &Arc<Watched>, header_read: u64, idle: u64) -> Entry {
    Entry {
        watched: Arc::downgrade(w),
        limits: Limits {
            header_read_timeout: TICK * header_read as u32,
            idle_timeout: TICK * idle as u32,
        },
        head_ticks: 0,
        quiet_ticks: 0,
        closing_ticks: None,
    }
}

/// Ticks until an order comes (at most `max`): the tick count and the order.
fn ticks_until_order(
    e: &mut Entry,
    w: &Watched,
    max: u32,
    each: impl Fn(&Watched),
) -> Option<(u32, u8)> {
    (1..=max).find_map(|n| {
        each(w);
        judge(e, w).map(|o| (n, o))
    })
}

#[test]
fn a_request_head_that_never_completes_is_cut_after_header_read_timeout() {
    let w = Arc::new(Watched::new());
    let mut e = entry(&w, 4, 100);
    // A slow client: one byte per tick, never a complete head.
    let got = ticks_until_order(&mut e, &w, 50, Watched::bytes_read);
    assert_eq!(got, Some((4, CLOSE_NOW)));
}

#[test]
fn a_silent_new_connection_is_cut_too() {
    // `serve` only starts the connection after a first byte; from there the
    // head must complete in time even if nothing more arrives.
    let w = Arc::new(Watched::new());
    let mut e = entry(&w, 4, 100);
    assert_eq!(
        ticks_until_order(&mut e, &w, 50, |_| {}),
        Some((4, CLOSE_NOW))
    );
}

#[test]
fn requests_in_flight_and_responses_being_written_are_never_cut_for_slowness() {
    let w = Arc::new(Watched::new());
    let mut e = entry(&w, 2, 8);
    w.request_started();
    // A slow upstream: nothing moves for a long time, the request is in flight.
    assert_eq!(ticks_until_order(&mut e, &w, 40, |_| {}), None);
    w.request_answered();
    // A long download with a pipelined next request already read: the
    // response is being written, so the next head does not count yet.
    w.bytes_read();
    assert_eq!(
        ticks_until_order(&mut e, &w, 40, Watched::bytes_written),
        None
    );
}

#[test]
fn a_keep_alive_connection_waiting_for_its_next_request_closes_after_idle_timeout() {
    let w = Arc::new(Watched::new());
    let mut e = entry(&w, 2, 8);
    w.request_started();
    w.request_answered();
    // Idle (the first tick still sees the exchange): graceful first, then
    // closed one idle_timeout later.
    assert_eq!(
        ticks_until_order(&mut e, &w, 40, |_| {}),
        Some((9, CLOSE_GRACEFULLY))
    );
    assert_eq!(
        ticks_until_order(&mut e, &w, 40, |_| {}),
        Some((8, CLOSE_NOW))
    );
}

#[test]
fn activity_resets_the_idle_count() {
    let w = Arc::new(Watched::new());
    let mut e = entry(&w, 2, 8);
    w.request_started();
    w.request_answered();
    for _ in 0..5 {
        assert_eq!(ticks_until_order(&mut e, &w, 6, |_| {}), None);
        w.bytes_written();
    }
}

#[test]
fn http2_connections_have_no_header_timeout_but_an_idle_one() {
    let w = Arc::new(Watched::new());
    w.set_h2();
    let mut e = entry(&w, 2, 8);
    // PING frames now and then: reads of whole frames, never a cut for a
    // "slow head" (an unfinished frame is: see the test below).
    let got = ticks_until_order(&mut e, &w, 30, Watched::bytes_read);
    assert_eq!(got, None);
    assert_eq!(
        ticks_until_order(&mut e, &w, 40, |_| {}),
        Some((8, CLOSE_GRACEFULLY))
    );
}

#[test]
fn an_http2_frame_left_unfinished_is_cut_after_header_read_timeout() {
    // Review 14 (R1): a HEADERS frame declared 16 KiB long and sent one
    // byte at a time kept a connection past both timeouts.
    let w = Arc::new(Watched::new());
    w.set_h2();
    let mut e = entry(&w, 4, 8);
    let trickle = |w: &Watched| {
        w.bytes_read();
        w.h2_frames(false, H2_HEAD);
    };
    assert_eq!(
        ticks_until_order(&mut e, &w, 50, trickle),
        Some((4, CLOSE_NOW))
    );
    // A busy connection that completes frames all the time is never cut,
    // even if each tick finds some frame half read.
    let w = Arc::new(Watched::new());
    w.set_h2();
    let mut e = entry(&w, 4, 8);
    let busy = |w: &Watched| {
        w.bytes_read();
        w.h2_frames(true, H2_HEAD);
    };
    assert_eq!(ticks_until_order(&mut e, &w, 50, busy), None);
    // A DATA frame sent slowly: a request body while the request is in
    // flight; with none in flight, nobody waits for it.
    let w = Arc::new(Watched::new());
    w.set_h2();
    let mut e = entry(&w, 4, 8);
    let slow_body = |w: &Watched| {
        w.bytes_read();
        w.h2_frames(false, H2_BODY);
    };
    w.request_started();
    assert_eq!(ticks_until_order(&mut e, &w, 50, slow_body), None);
    w.request_answered();
    assert_eq!(
        ticks_until_order(&mut e, &w, 50, slow_body),
        Some((4, CLOSE_NOW))
    );
}

#[test]
fn orders_wake_the_connection_and_never_go_back() {
    let w = Arc::new(Watched::new());
    let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    struct Count(Arc<std::sync::atomic::AtomicUsize>);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let waker = Waker::from(Arc::new(Count(woken.clone())));
    let mut registered = None;
    assert_eq!(w.order(&waker, &mut registered), KEEP);
    assert_eq!(w.order(&waker, &mut registered), KEEP);
    w.give(CLOSE_GRACEFULLY);
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    // The task runs and sees the order; the next order must wake it again
    // (giving an order used up the registered waker).
    assert_eq!(w.order(&waker, &mut registered), CLOSE_GRACEFULLY);
    w.give(CLOSE_NOW);
    assert_eq!(woken.load(Ordering::SeqCst), 2);
    w.give(CLOSE_GRACEFULLY);
    assert_eq!(w.order(&waker, &mut registered), CLOSE_NOW);
    assert_eq!(woken.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn shutdown_tells_every_connection_and_every_later_one() {
    let (stop, rx) = watch::channel(false);
    let dog = Watchdog::start(rx);
    let early = Arc::new(Watched::new());
    let limits = Limits {
        header_read_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
    };
    dog.watch(&early, limits);
    assert_eq!(dog.len(), 1);
    stop.send_replace(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while early.order.load(Ordering::SeqCst) != CLOSE_GRACEFULLY {
        assert!(tokio::time::Instant::now() < deadline, "not told to drain");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let late = Arc::new(Watched::new());
    dog.watch(&late, limits);
    assert_eq!(late.order.load(Ordering::SeqCst), CLOSE_GRACEFULLY);
    // Ended connections are forgotten at the next tick.
    drop(early);
    drop(late);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !lock(&dog.0).entries.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ended connections kept"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
