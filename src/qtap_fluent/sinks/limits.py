"""Service limits the sinks respect, each with where it comes from.

S3: https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html and the botocore 1.43.11
service model (CompleteMultipartUpload: "Each part must be at least 5 MB in size, except the last
part"; UploadPart: "Part numbers can be any number from 1 to 10,000").
CloudWatch Logs: the PutLogEvents API reference and the botocore 1.43.11 service model.
Fluent Bit values: ``plugins/out_s3/s3.c`` config checks (see shared reference fluentbit.md 3.4).
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB
GIB: Final = 1024 * MIB

# --- Amazon S3 -------------------------------------------------------------------------------
#: Smallest part of a multipart upload, except the last one (S3 quick facts).
S3_MIN_PART_SIZE: Final = 5 * MIB
#: Largest part of a multipart upload (S3 quick facts).
S3_MAX_PART_SIZE: Final = 5 * GIB
#: Part numbers run from 1 to 10,000 (botocore UploadPart documentation).
S3_MAX_PARTS: Final = 10_000
#: Largest object a single PutObject may upload: 5 GB (S3 quick facts).
S3_MAX_PUT_OBJECT: Final = 5 * GIB
#: Object keys longer than 1,024 bytes are refused (S3 object key naming rules; Fluent Bit warns).
S3_MAX_KEY_BYTES: Final = 1024

# --- Fluent Bit's out_s3 option bounds (plugins/out_s3/s3.c) -----------------------------------
#: ``total_file_size must be at least 1MB``.
FB_S3_MIN_TOTAL_FILE_SIZE: Final = 1_000_000
#: ``Max total_file_size is 50,000,000,000 bytes`` (= 10,000 parts of 5 MB).
FB_S3_MAX_TOTAL_FILE_SIZE: Final = 50_000_000_000
#: Default ``upload_chunk_size`` (the S3 minimum part size).
FB_S3_DEFAULT_CHUNK: Final = 5_242_880
#: Default ``total_file_size`` (100 MB) and ``upload_timeout`` (10 minutes).
FB_S3_DEFAULT_TOTAL_FILE_SIZE: Final = 100_000_000
FB_S3_DEFAULT_UPLOAD_TIMEOUT: Final = 600.0

# --- CloudWatch Logs PutLogEvents ------------------------------------------------------------
#: Maximum batch size: sum of UTF-8 message bytes plus 26 bytes per event (PutLogEvents).
CW_MAX_BATCH_BYTES: Final = 1_048_576
#: Bytes CloudWatch adds to every event when it measures a batch (PutLogEvents).
CW_EVENT_OVERHEAD: Final = 26
#: Maximum events in one PutLogEvents call.
CW_MAX_BATCH_EVENTS: Final = 10_000
#: Maximum size of one event (1 MB since 2024; older SDK docs say 256 KB). The 26 bytes of
#: overhead count, so a single event always fits in a batch on its own.
CW_MAX_EVENT_BYTES: Final = 1_048_576
#: A batch may not span more than 24 hours (timestamps in milliseconds). We keep the span
#: strictly below it, so "exactly 24 h apart" always goes to two requests.
CW_MAX_SPAN_MS: Final = 24 * 3600 * 1000
#: Retention values CloudWatch accepts for PutRetentionPolicy (Fluent Bit log_retention_days).
CW_RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
     2922, 3288, 3653}
)
