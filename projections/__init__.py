"""The pure core: lead states, definitions and the projections of SPEC §4.

No I/O frameworks (Faust, Kafka clients, aiohttp): replay and the live worker
both call into here, so they cannot disagree.

May import: schemas, projections
"""

from projections.definitions import Definitions, DefinitionsError, default_definitions, load_definitions, parse_definitions
from projections.lead import QUALIFICATIONS, LeadState, LeadView, record, view
from projections.projector import Projector, decode_record, format_time, lead_change_records, stored_fold
from projections.report import Aggregates, Changes, EventCounts, build_comparison, build_report, lead_record

__all__ = [
    "QUALIFICATIONS",
    "Aggregates",
    "Changes",
    "Definitions",
    "DefinitionsError",
    "EventCounts",
    "LeadState",
    "LeadView",
    "Projector",
    "build_comparison",
    "build_report",
    "decode_record",
    "default_definitions",
    "format_time",
    "lead_change_records",
    "lead_record",
    "load_definitions",
    "parse_definitions",
    "record",
    "stored_fold",
    "view",
]
