//! The bytes of request bodies held in memory by all unfinished requests together, under one
//! bound (`http.max_body_bytes_held`).
//!
//! Per-request limits alone let many slow uploads add up: 1,000 connections announcing 1 MiB
//! each, or 40 stalled bulk uploads, held gigabytes. Every body is claimed from this budget as
//! its bytes arrive, and the claim is given back when the request is answered; a body that
//! would pass the bound is refused (503, retry shortly) instead of read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct BodyBudget {
    held: AtomicUsize,
    limit: usize,
}

/// One request's share of the budget, given back when dropped.
pub struct Claim {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BodyBudget {
    pub fn new(limit: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            held: AtomicUsize::new(0),
            limit,
        })
    }

    /// A claim on nothing yet, for a request about to read its body.
    pub fn claim(self: &Arc<Self>) -> Claim {
        Claim {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes of bodies held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Claim {
    /// Claims `more` bytes; `false` (and nothing claimed) when they would pass the bound.
    pub fn grow(&mut self, more: usize) -> bool {
        let budget = &self.budget;
        let mut held = budget.held.load(Ordering::Relaxed);
        loop {
            let Some(after) = held
                .checked_add(more)
                .filter(|&after| after <= budget.limit)
            else {
                return false;
            };
            match budget.held.compare_exchange_weak(
                held,
                after,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.bytes += more;
                    return true;
                }
                Err(now) => held = now,
            }
        }
    }

    /// Counts `more` bytes already held (a bulk request's answers for sends already accepted),
    /// past the bound if need be: later claims are refused until they are given back.
    pub fn hold(&mut self, more: usize) {
        self.budget.held.fetch_add(more, Ordering::AcqRel);
        self.bytes += more;
    }

    /// Gives `fewer` of this claim's bytes back (a part of a body no longer held).
    pub fn release(&mut self, fewer: usize) {
        let fewer = fewer.min(self.bytes);
        self.budget.held.fetch_sub(fewer, Ordering::AcqRel);
        self.bytes -= fewer;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_add_up_under_the_bound_and_are_given_back() {
        let budget = BodyBudget::new(100);
        let mut first = budget.claim();
        let mut second = budget.claim();
        assert!(first.grow(60));
        assert!(!second.grow(41), "60 + 41 passes 100");
        assert!(second.grow(40));
        assert_eq!(budget.held(), 100);
        assert!(!first.grow(1));
        drop(first);
        assert_eq!(budget.held(), 40);
        assert!(second.grow(60));
        drop(second);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn bytes_held_anyway_pass_the_bound_and_refuse_later_claims_until_released() {
        let budget = BodyBudget::new(100);
        let mut bulk = budget.claim();
        let mut other = budget.claim();
        bulk.hold(150);
        assert_eq!(budget.held(), 150);
        assert!(!other.grow(1));
        bulk.release(100);
        assert!(other.grow(50));
        bulk.release(1_000);
        assert_eq!((bulk.bytes(), budget.held()), (0, 50));
    }
}
