"""What miners, validators and the averager agree on: content hashes, commitments, competitions."""

from cortex.protocol.commitment import (
    MAX_BYTES,
    VERSION,
    CommitmentError,
    ModelCommitment,
    is_repo_id,
    max_repo_id_length,
)
from cortex.protocol.competition import (
    BUILTIN_COMPETITIONS,
    CORTEX_70B,
    CORTEX_TINY,
    AdapterLimits,
    BaseModelRef,
    Competition,
    CompetitionError,
    CompetitionSchedule,
    EvalConfig,
    SkillConfig,
    get_competition,
    load_competitions,
)
from cortex.protocol.hashing import content_hash, file_sha256, salted_hash

__all__ = [
    "AdapterLimits",
    "BUILTIN_COMPETITIONS",
    "BaseModelRef",
    "CORTEX_70B",
    "CORTEX_TINY",
    "CommitmentError",
    "Competition",
    "CompetitionError",
    "CompetitionSchedule",
    "EvalConfig",
    "SkillConfig",
    "MAX_BYTES",
    "ModelCommitment",
    "VERSION",
    "content_hash",
    "file_sha256",
    "get_competition",
    "is_repo_id",
    "load_competitions",
    "max_repo_id_length",
    "salted_hash",
]
