use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;

use super::*;

fn consent(timeout: Duration) -> ConsentRequest {
    ConsentRequest {
        id: 1,
        app_id: "news".into(),
        app_title: "Market news".into(),
        origin: "https://news.example.com".into(),
        asks: "show you notifications".into(),
        timeout,
    }
}

struct ConsentState {
    dialog: Consent,
    answers: Vec<ConsentAnswer>,
}

fn consent_harness(timeout: Duration) -> Harness<'static, ConsentState> {
    let state = ConsentState { dialog: Consent::new(consent(timeout)), answers: Vec::new() };
    Harness::builder().with_size([520.0, 300.0]).build_ui_state(
        |ui, s: &mut ConsentState| {
            if let Some(a) = s.dialog.ui(ui.ctx()) {
                s.answers.push(a);
            }
        },
        state,
    )
}

#[test]
fn the_consent_dialog_says_who_asks_what_and_answers_with_the_button_pressed() {
    let mut h = consent_harness(Duration::from_secs(30));
    h.run_steps(2);
    assert!(h.query_by_label("Market news wants to show you notifications.").is_some());
    assert!(h.query_by_label("https://news.example.com").is_some());
    h.get_by_label("Always allow").click();
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&ConsentAnswer::AllowAlways));

    let mut h = consent_harness(Duration::from_secs(30));
    h.run_steps(2);
    h.get_by_label("Allow once").click();
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&ConsentAnswer::AllowOnce));
}

#[test]
fn deny_is_the_default_and_escape_denies() {
    let mut h = consent_harness(Duration::from_secs(30));
    h.run_steps(2);
    // The keyboard starts on Deny: Enter refuses.
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&ConsentAnswer::Deny));

    let mut h = consent_harness(Duration::from_secs(30));
    h.run_steps(2);
    h.key_press(egui::Key::Escape);
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&ConsentAnswer::Deny));
}

#[test]
fn an_unanswered_prompt_times_out_as_a_denial() {
    let mut h = consent_harness(Duration::from_millis(1));
    std::thread::sleep(Duration::from_millis(5));
    h.run_steps(1);
    assert_eq!(h.state().answers.first(), Some(&ConsentAnswer::TimedOut));
}

struct ResolverState {
    dialog: Resolver,
    answers: Vec<Option<usize>>,
}

fn resolver_harness() -> Harness<'static, ResolverState> {
    let request = ResolverRequest {
        id: 7,
        intent: "ViewChart".into(),
        context_type: "fdc3.instrument".into(),
        choices: vec![
            ResolverChoice {
                app_id: "chart".into(),
                title: "Chart".into(),
                instance: Some(3),
                desk: None,
                description: "Candles and volume".into(),
            },
            ResolverChoice {
                app_id: "chart".into(),
                title: "Chart".into(),
                instance: None,
                desk: None,
                description: "Candles and volume".into(),
            },
            ResolverChoice {
                app_id: "chart".into(),
                title: "Chart".into(),
                instance: None,
                desk: Some("bob".into()),
                description: "on desk bob".into(),
            },
            ResolverChoice {
                app_id: "depth".into(),
                title: "Depth".into(),
                instance: None,
                desk: None,
                description: "Order book depth".into(),
            },
        ],
    };
    let state = ResolverState { dialog: Resolver::new(request), answers: Vec::new() };
    Harness::builder().with_size([520.0, 360.0]).build_ui_state(
        |ui, s: &mut ResolverState| {
            if let Some(a) = s.dialog.ui(ui.ctx()) {
                s.answers.push(a);
            }
        },
        state,
    )
}

#[test]
fn the_resolver_lists_running_and_new_handlers_and_returns_the_pick() {
    let mut h = resolver_harness();
    h.run_steps(2);
    assert!(h.query_by_label("Chart (running, #3)").is_some());
    assert!(h.query_by_label("Chart (open new)").is_some());
    assert!(h.query_by_label("Chart (on bob)").is_some(), "another desk's app says where it runs");
    h.get_by_label("Depth (open new)").click();
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&Some(3)));

    let mut h = resolver_harness();
    h.run_steps(2);
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&None));

    let mut h = resolver_harness();
    h.run_steps(2);
    h.key_press(egui::Key::ArrowDown);
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    assert_eq!(h.state().answers.first(), Some(&Some(1)));
}

#[test]
fn the_consent_dialog_looks_as_it_should() {
    let mut h = consent_harness(Duration::from_secs(30));
    crate::theme::apply(&h.ctx);
    h.run_steps(3);
    h.snapshot("consent");
}

#[test]
fn the_resolver_looks_as_it_should() {
    let mut h = resolver_harness();
    crate::theme::apply(&h.ctx);
    h.run_steps(3);
    h.snapshot("resolver");
}
