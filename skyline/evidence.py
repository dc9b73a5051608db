"""Who the evidence of a look came from: sessions and client networks per variant.

Optional in every step document (`skyline judge replay`): a look without it is
judged on its figures alone, as before. Gathered from the shared evidence store
(adapters/evidence.py) by the look's activity; judged by skyline/plausibility.py.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

TOP_NETWORKS = 10  # how many of the most-reporting networks a look keeps, per variant and outcome


class VariantEvidence(BaseModel):
    """One variant's sessions in the step so far, and the client networks they came from."""

    model_config = ConfigDict(extra="ignore")

    sessions: int = Field(default=0, ge=0, description="sessions that reported on the version")
    networks: int = Field(default=0, ge=0, description="distinct client networks (IPv4 /24, IPv6 /48)")
    failing_networks: int = Field(default=0, ge=0, description="networks with a failed load")
    # Observations (one per session, version and outcome) of the networks that sent the most,
    # largest first: what the evidence would lose without them.
    top_failures: list[int] = Field(default_factory=list)
    top_successes: list[int] = Field(default_factory=list)


class Evidence(BaseModel):
    model_config = ConfigDict(extra="ignore")

    canary: VariantEvidence
    baseline: VariantEvidence | None = None
    seconds: float = Field(default=0, ge=0, description="seconds of the step these counts cover")
    # New sessions per second on the building in the hour before the rollout (None: unknown).
    sessions_per_second_before: float | None = Field(default=None, ge=0)
