"""Composition root: the only place that builds participant-svc's adapters."""

from __future__ import annotations

from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.bus import (
    PARTICIPANT_SVC_DEPLOYER,
    PARTICIPANT_SVC_GOVERNANCE,
    PARTICIPANT_SVC_REQUESTS,
)
from jhaas_schemas.events import (
    ChangeApproved,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestCancelled,
    decode_event,
)
from jhaas_schemas.rpc import (
    Apply,
    CourseRef,
    Decide,
    Empty,
    JoinCodeRef,
    ListParticipations,
    ParticipantOps,
    ParticipationRef,
    RejectParticipations,
    RemoveParticipant,
    SetJoinOpen,
    TutorRef,
    UserRef,
)
from participant_svc.handlers import Clock, ParticipantHandlers, utcnow
from participant_svc.store import VERSIONS_DIR, messaging, metadata

SERVICE = "participant-svc"
DEPLOYER_CONSUMER = PARTICIPANT_SVC_DEPLOYER.name
GOVERNANCE_CONSUMER = PARTICIPANT_SVC_GOVERNANCE.name
REQUESTS_CONSUMER = PARTICIPANT_SVC_REQUESTS.name


def build_app(settings: RuntimeSettings, clock: Clock = utcnow) -> ServiceRuntime:
    # The runtime answers jhaas.rpc.participant.health on its own.
    runtime = ServiceRuntime(
        settings, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    h = ParticipantHandlers(runtime, clock)
    route = runtime.rpc.route
    route(ParticipantOps.COURSE, CourseRef, h.course)
    route(ParticipantOps.ROTATE_JOIN, CourseRef, h.rotate_join)
    route(ParticipantOps.SET_JOIN_OPEN, SetJoinOpen, h.set_join_open)
    route(ParticipantOps.FIND_BY_CODE, JoinCodeRef, h.find_by_code)
    route(ParticipantOps.APPLY, Apply, h.apply)
    route(ParticipantOps.LIST, ListParticipations, h.list_participations)
    route(ParticipantOps.ACCEPT, Decide, h.accept)
    route(ParticipantOps.REJECT, RejectParticipations, h.reject)
    route(ParticipantOps.REMOVE, RemoveParticipant, h.remove)
    route(ParticipantOps.REOPEN, ParticipationRef, h.reopen)
    route(ParticipantOps.LEAVE, CourseRef, h.leave)
    route(ParticipantOps.ADD_TUTOR, TutorRef, h.add_tutor)
    route(ParticipantOps.REMOVE_TUTOR, TutorRef, h.remove_tutor)
    route(ParticipantOps.MY_COURSES, Empty, h.my_courses)
    route(ParticipantOps.ACCESS, CourseRef, h.access)
    route(ParticipantOps.MY_PARTICIPATIONS, Empty, h.my_participations)
    route(ParticipantOps.WITHDRAW_USER, UserRef, h.withdraw_user)
    runtime.add_consumer(
        EventConsumer(
            name=GOVERNANCE_CONSUMER,
            stream=PARTICIPANT_SVC_GOVERNANCE.stream.name,
            handlers={RequestApproved: h.on_approved, ChangeApproved: h.on_change_approved},
            decode=decode_event,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            name=REQUESTS_CONSUMER,
            stream=PARTICIPANT_SVC_REQUESTS.stream.name,
            handlers={RequestCancelled: h.on_cancelled},
            decode=decode_event,
        )
    )
    runtime.add_consumer(
        EventConsumer(
            name=DEPLOYER_CONSUMER,
            stream=PARTICIPANT_SVC_DEPLOYER.stream.name,
            handlers={
                HubDeploying: h.on_deployer_event,
                HubReady: h.on_deployer_event,
                HubFailed: h.on_deployer_event,
                CourseEnded: h.on_deployer_event,
                HubDeleted: h.on_hub_deleted,
            },
            decode=decode_event,
        )
    )
    return runtime
