//! On-demand list prices, US East (N. Virginia), in US dollars, as AWS published them in 2025
//! (DynamoDB after its November 2024 reduction). Check the current pricing pages before
//! quoting a figure; the meter's units do not depend on them.

/// DynamoDB on-demand: per million write request units (1 KB each).
pub const DYNAMODB_WRITE_PER_MILLION: f64 = 0.625;
/// DynamoDB on-demand: per million read request units (4 KB strongly consistent).
pub const DYNAMODB_READ_PER_MILLION: f64 = 0.125;
/// SQS standard queues: per million requests (each 64 KB chunk of a payload is one).
pub const SQS_PER_MILLION: f64 = 0.40;
/// KMS: $0.03 per 10,000 requests.
pub const KMS_PER_MILLION: f64 = 3.00;
/// S3 Standard: PUT, COPY, POST, LIST (and tagging) per million.
pub const S3_PUT_PER_MILLION: f64 = 5.00;
/// S3 Standard: GET, SELECT and the rest per million.
pub const S3_GET_PER_MILLION: f64 = 0.40;
/// Lambda: per million requests.
pub const LAMBDA_REQUEST_PER_MILLION: f64 = 0.20;
/// Lambda on arm64: per GB-second.
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
/// API Gateway HTTP API: per million requests of up to 512 KB. A Lambda Function URL adds
/// nothing to the function's own price.
pub const API_GATEWAY_HTTP_PER_MILLION: f64 = 1.00;
/// CloudWatch Logs: per GB ingested (standard class).
pub const LOGS_PER_GB: f64 = 0.50;

/// What an invocation bills of its own (parsing, verifying, hashing), in milliseconds.
pub const OWN_MILLIS: f64 = 2.0;

/// Typical in-region latency of one call, in milliseconds, by service: what the function waits
/// for, and so bills.
pub const CALL_MILLIS: [(&str, f64); 4] =
    [("dynamodb", 5.0), ("sqs", 8.0), ("s3", 20.0), ("kms", 8.0)];

/// The modelled latency of `operation` (`dynamodb:PutItem`, ...).
pub fn call_millis(operation: &str) -> f64 {
    let service = operation.split(':').next().unwrap_or("");
    CALL_MILLIS
        .iter()
        .find(|(s, _)| *s == service)
        .map_or(5.0, |(_, ms)| *ms)
}

/// The platform's START, END and REPORT lines of one invocation in JSON format, when the
/// system log level lets them through.
pub const PLATFORM_LOG_BYTES: f64 = 620.0;

/// How long a partner takes to answer a delivery, in milliseconds: the dispatcher bills the
/// wait, once per batch (its deliveries wait at once).
pub const PARTNER_MILLIS: f64 = 100.0;
