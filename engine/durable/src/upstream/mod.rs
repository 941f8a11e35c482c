//! What the engine hands accepted messages to: the [`Upstream`] (Meta's Cloud API in
//! production, a stand-in in tests), the lane's side of a hand-over ([`HandOver`]), what an
//! upstream can answer, and the backoff of a send that failed for now.

mod window;

use crate::message::StoredMessage;
use wagate_rules::clock::MICROS_PER_SEC;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream failed for now: {0}")]
    Retryable(String),
    #[error("upstream refused the message: {0}")]
    Permanent(String),
    /// Meta refused the message for good with its error code: besides the message failing,
    /// the state the code speaks of changes (the person's, the number's, the template's).
    #[error("Meta refused the message with code {code}: {reason}")]
    Refused { code: u32, reason: String },
    /// The request may have reached the upstream and its answer is lost (the send was cut
    /// off by a stop): sending again could deliver it twice, so it stays in flight for the
    /// upstream's reconciliation or an operator.
    #[error("the upstream's answer is unknown: {0}")]
    Unknown(String),
}

/// What the upstream knows of a message handed over before a stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    Delivered(String),
    NotDelivered,
    Unknown,
}

/// Where accepted messages go: Meta's Cloud API in production.
///
/// Every hand-over carries the message id and its attempt number (`message.attempts`, written
/// to disk before the hand-over). Answering [`Reconciled::NotDelivered`] for an attempt is a
/// promise that the upstream will never deliver that attempt or an earlier one, even if it
/// arrives late; the engine then hands the message over again as a later attempt.
pub trait Upstream: Send + Sync {
    /// Sends one message; `Ok` carries the upstream's id for it.
    fn send(&self, message: &StoredMessage) -> Result<String, UpstreamError>;

    /// Sends that may be under way at once when [`Upstream::send_all`] is not overridden: each
    /// runs [`Upstream::send`] on its own thread. One (the default) sends one after another.
    fn concurrency(&self) -> usize {
        1
    }

    /// Sends `messages`, all due now. A message goes out only after `hand_over` has marked it
    /// in flight ([`HandOver::going_out`]), and each outcome is given to `hand_over` as it
    /// comes, so that a crash leaves in flight only what was really under way. A message never
    /// reported as going out was not sent. The default keeps up to
    /// [`Upstream::concurrency`] sends under way; a network upstream overrides this to mark
    /// each send when its pacing lets it go.
    fn send_all(&self, messages: &[StoredMessage], hand_over: &mut dyn HandOver) {
        window::send_in_window(self, messages, hand_over);
    }

    /// After a restart: did the upstream get this message (attempt `message.attempts` or an
    /// earlier one), handed over before the stop?
    fn reconcile(&self, message: &StoredMessage) -> Reconciled;
}

/// A hand-over lane's side of [`Upstream::send_all`]: it writes the marks and the outcomes.
/// When `send_all` returns, a message never marked is due again as it was, and one marked but
/// given no outcome (its send cut off after it may have gone out) stays in flight for an
/// operator: an upstream reports only what it knows.
pub trait HandOver {
    /// The messages at `indices` (into the slice being sent) are about to go out: returns once
    /// they are marked in flight on disk (synced). `false`: the disk refused, and none of them
    /// may go out.
    fn going_out(&mut self, indices: &[usize]) -> bool;

    /// Outcomes that came, each for the message at its index: recorded before this returns.
    fn outcomes(&mut self, outcomes: Vec<(usize, Result<String, UpstreamError>)>);
}

/// How long a send that failed for now waits before its next attempt.
pub(crate) fn backoff_micros(attempts: u32) -> u64 {
    MICROS_PER_SEC << attempts.min(8)
}
