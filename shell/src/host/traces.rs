//! The spans an app's bus traffic makes, for IT's collector (`telemetry::trace`): a publish
//! from its app's connection to the broker's acceptance (`publish <topic>`, a producer span),
//! a durable message's journal commit (`journal commit`), and each delivery until the
//! receiving app's connection has written it (`deliver <topic>`, a consumer span). The
//! delivery spans and the receiving pages' `traceparent` have the publish span as parent, so
//! one trace follows a message from the page that sent it to every page that got it.
//!
//! Nothing here runs unless the message travels in a trace; nothing is recorded unless that
//! trace is sampled.

use broker::{Envelope, Published};
use protocol::TraceParent;
use telemetry::trace::{self, Span, SpanKind, Value};

/// A publish being traced: its span's context (what receivers are told) and when it began.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishSpan {
    pub(crate) context: TraceParent,
    /// The span the publisher sent it from, if it sent one.
    parent: Option<u64>,
    start_ns: u64,
}

/// The span for a publish an app sent in `parent` (or in no trace): `None` when the message
/// travels in no trace.
#[inline]
pub(crate) fn publish(parent: Option<TraceParent>) -> Option<PublishSpan> {
    let tracer = trace::global();
    // The common case, a message in no trace on a desk that does not trace: nothing to do.
    if parent.is_none() && !tracer.enabled() {
        return None;
    }
    let context = tracer.child_of(parent)?;
    Some(PublishSpan { context, parent: parent.map(|p| p.span_id), start_ns: trace::now_ns() })
}

impl PublishSpan {
    /// Records the publish (if sampled) once the broker answered, and the journal's commit of
    /// a durable message when it comes.
    pub(crate) fn finish(self, app: &str, topic: &str, outcome: Result<Published, &broker::Error>) {
        if !trace::global().records(self.context) {
            return;
        }
        let end_ns = trace::now_ns();
        let mut attributes = vec![
            ("messaging.system", Value::Str("tessera".into())),
            ("messaging.operation.type", Value::Str("publish".into())),
            ("messaging.destination.name", Value::Str(topic.to_owned().into())),
            ("tessera.app", Value::Str(app.to_owned().into())),
        ];
        if let Ok(p) = &outcome {
            attributes.push(("messaging.message.id", Value::Str(p.seq.to_string().into())));
            attributes.push(("tessera.receivers", Value::Int(i64::try_from(p.delivered).unwrap_or(i64::MAX))));
        }
        let span = Span {
            trace_id: self.context.trace_id,
            span_id: self.context.span_id,
            parent: self.parent,
            name: format!("publish {topic}"),
            kind: SpanKind::Producer,
            start_ns: self.start_ns,
            end_ns,
            attributes,
            error: outcome.as_ref().err().map(ToString::to_string),
        };
        trace::global().record(span);
        if let Ok(Published { commit: Some(commit), seq, .. }) = outcome {
            self.journal(seq, commit, end_ns);
        }
    }

    /// Waits (on the runtime, not here) for the journal's commit, then records it.
    fn journal(self, seq: u64, commit: broker::CommitAck, start_ns: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            let outcome = commit.wait_async().await;
            trace::global().record(Span {
                trace_id: self.context.trace_id,
                span_id: trace::span_id(),
                parent: Some(self.context.span_id),
                name: "journal commit".into(),
                kind: SpanKind::Internal,
                start_ns,
                end_ns: trace::now_ns(),
                attributes: vec![("messaging.message.id", Value::Str(seq.to_string().into()))],
                error: outcome.err().map(|e| e.to_string()),
            });
        });
    }
}

/// Whether a delivery of `envelope` makes a span.
pub(crate) fn traced(envelope: &Envelope) -> bool {
    envelope.trace.is_some_and(|t| trace::global().records(t))
}

/// Records the delivery of `envelope` to `app`'s subscription `sub`, written just now: from
/// the broker's acceptance to the write.
pub(crate) fn delivered(app: &str, sub: u32, envelope: &Envelope) {
    let Some(context) = envelope.trace.filter(|&t| trace::global().records(t)) else { return };
    let topic = envelope.topic.as_str();
    trace::global().record(Span {
        trace_id: context.trace_id,
        span_id: trace::span_id(),
        parent: Some(context.span_id),
        name: format!("deliver {topic}"),
        kind: SpanKind::Consumer,
        start_ns: envelope.timestamp.0.saturating_mul(1000),
        end_ns: trace::now_ns(),
        attributes: vec![
            ("messaging.system", Value::Str("tessera".into())),
            ("messaging.operation.type", Value::Str("deliver".into())),
            ("messaging.destination.name", Value::Str(topic.to_owned().into())),
            ("messaging.message.id", Value::Str(envelope.seq.to_string().into())),
            ("tessera.app", Value::Str(app.to_owned().into())),
            ("tessera.subscription", Value::Int(i64::from(sub))),
        ],
        error: None,
    });
}
