//! Meta's Cloud API wire format as wagate speaks it: send requests in, success and error
//! answers out, in the shapes a sender's existing code already handles.

pub mod error;
pub mod request;
pub mod response;
