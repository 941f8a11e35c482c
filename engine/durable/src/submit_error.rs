//! Why the durable engine could not take a submission, and how a Cloud API caller is told.

use wagate_cloud_api::error::ApiError;
use wagate_store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("idempotency key '{0}' was already used for a different request")]
    KeyReused(String),
    #[error("a request with idempotency key '{0}' is still being processed; retry shortly")]
    KeyInFlight(String),
    #[error("wagate cannot store new work: {0}")]
    Unavailable(#[from] StoreError),
}

impl From<&SubmitError> for ApiError {
    fn from(error: &SubmitError) -> ApiError {
        match error {
            SubmitError::KeyReused(_) => ApiError::new(
                422,
                100,
                "Invalid parameter",
                error.to_string(),
                "idempotency_key_reused",
            ),
            SubmitError::KeyInFlight(_) => ApiError::new(
                409,
                2,
                "Service temporarily unavailable",
                error.to_string(),
                "idempotency_key_in_flight",
            ),
            SubmitError::Unavailable(StoreError::NoSpace(_)) => ApiError::new(
                503,
                131_016,
                "Service unavailable",
                error.to_string(),
                "storage_full",
            ),
            SubmitError::Unavailable(_) => ApiError::new(
                503,
                131_016,
                "Service unavailable",
                error.to_string(),
                "storage_unavailable",
            ),
        }
    }
}
