"""Limits the gateway enforces; MLflow's where MLflow has one, so its users meet no surprise."""

from __future__ import annotations

import re

MAX_BATCH_ID_LENGTH = 200
MAX_EVENTS_PER_BATCH = 10_000
MAX_POINTS_PER_BATCH = 100_000
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6_000
MAX_TAG_VALUE_LENGTH = 8_000
MAX_NAME_LENGTH = 500
MAX_ARTIFACT_LOCATION_LENGTH = 2_000
#: Timestamps are ms since the epoch; reject anything past the year 9999.
MAX_TIMESTAMP_MS = 253_402_300_799_999

KEY_PATTERN = re.compile(r"^[/\w.\- :]+$")
RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
