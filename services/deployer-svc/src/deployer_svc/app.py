"""Composition root: the only place that builds deployer-svc's adapters."""

from __future__ import annotations

from functools import partial

from deployer_svc.backends.base import HubBackend
from deployer_svc.credentials import CredentialBox
from deployer_svc.handlers import Clock, DeployerHandlers, DueTimes, utcnow
from deployer_svc.roster import ROSTER_EVENTS
from deployer_svc.roster_handlers import (
    RosterChanges,
    acknowledged,
    on_roster_events,
    on_roster_purged,
)
from deployer_svc.roster_sync import RosterSync
from deployer_svc.scheduler import Scheduler
from deployer_svc.settings import SERVICE, DeployerSettings
from deployer_svc.store import VERSIONS_DIR, messaging, metadata
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import SettingsError
from jhaas_schemas.bus import (
    DEPLOYER_SVC_GOVERNANCE,
    DEPLOYER_SVC_PARTICIPANTS,
    DEPLOYER_SVC_REQUESTS,
)
from jhaas_schemas.events import (
    ChangeApproved,
    ParticipantApplied,
    ParticipantRejected,
    RequestApproved,
    RequestCancelled,
    RosterPurged,
    decode_event,
)
from jhaas_schemas.rpc import DeployerOps, GetOAuthClient, ListDeployments, RedeployHub

__all__ = ["SERVICE", "build_app", "build_backend"]

GOVERNANCE_CONSUMER = DEPLOYER_SVC_GOVERNANCE.name
REQUESTS_CONSUMER = DEPLOYER_SVC_REQUESTS.name
PARTICIPANTS_CONSUMER = DEPLOYER_SVC_PARTICIPANTS.name


def build_backend(settings: DeployerSettings) -> HubBackend:
    if settings.backend == "local":
        from deployer_svc.backends.local import LocalBackend

        return LocalBackend(
            settings.local_hubs_dir,
            installation_id=settings.installation_id,
            isolate=True,
            require_isolation=settings.require_isolation,
            singleuser_venv=settings.singleuser_venv,
            private_dir=settings.runtime.data_dir,
        )
    from kubernetes_asyncio import client, config

    from deployer_svc.backends.k8s_manifests import K8sSettings
    from deployer_svc.backends.kubernetes import KubernetesBackend

    k8s = settings.k8s or K8sSettings(
        domain=settings.hub_domain, installation_id=settings.installation_id
    )
    if settings.kubeconfig is not None:
        # Outside the cluster: the kubeconfig is read (credentials, exec plugins)
        # at the first API call.
        return KubernetesBackend(k8s, kubeconfig=settings.kubeconfig)
    try:
        # In the cluster, under its ServiceAccount (deploy/kubernetes/deployer-rbac.yaml).
        config.load_incluster_config()  # type: ignore[no-untyped-call]  # untyped library
    except config.ConfigException as exc:
        raise SettingsError(
            "JHAAS_HUB_BACKEND=kubernetes runs inside the cluster, or outside it with "
            f"JHAAS_KUBECONFIG set to a kubeconfig file: {exc}"
        ) from None
    return KubernetesBackend(k8s, client.ApiClient())


def credential_box(settings: DeployerSettings) -> CredentialBox:
    if settings.secret_keys:
        return CredentialBox(settings.secret_keys)
    return CredentialBox.from_key_file(settings.runtime.data_dir)


def build_app(
    settings: DeployerSettings, clock: Clock = utcnow, backend: HubBackend | None = None
) -> ServiceRuntime:
    runtime = ServiceRuntime(
        settings.runtime, metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    backend = backend or build_backend(settings)
    credentials = credential_box(settings)
    roster_sync = RosterSync(runtime.db, backend, poll=settings.max_sleep.total_seconds())
    scheduler = Scheduler(
        runtime,
        backend,
        settings,
        credentials=credentials,
        clock=clock,
        hub_built=roster_sync.changed,
        reconciled=roster_sync.resync_all,
    )
    handlers = DeployerHandlers(
        runtime,
        lead_time=settings.lead_time,
        grace=settings.grace,
        clock=clock,
        on_change=scheduler.notify,
        credentials=credentials,
    )
    runtime.rpc.route(DeployerOps.LIST_DEPLOYMENTS, ListDeployments, handlers.list_deployments)
    runtime.rpc.route(DeployerOps.REDEPLOY, RedeployHub, handlers.redeploy)
    runtime.rpc.route(DeployerOps.OAUTH_CLIENT, GetOAuthClient, handlers.oauth_client)
    approvals, cancellations = DueTimes(), DueTimes()
    # What a batch made due is told to the scheduler once it is over (committed,
    # or rolled back and applied one by one): told from inside the batch's
    # transaction, the scheduler could read the schedule without the change
    # and sleep past it.
    runtime.add_consumer(
        EventConsumer(
            name=GOVERNANCE_CONSUMER,
            stream=DEPLOYER_SVC_GOVERNANCE.stream.name,
            handlers={ChangeApproved: partial(handlers.on_change_approved, due=approvals)},
            batch_handlers={RequestApproved: partial(handlers.on_requests_approved, due=approvals)},
            decode=decode_event,
            after_batch=partial(approvals.tell, scheduler.notify),
        )
    )
    runtime.add_consumer(
        EventConsumer(
            name=REQUESTS_CONSUMER,
            stream=DEPLOYER_SVC_REQUESTS.stream.name,
            handlers={RequestCancelled: partial(handlers.on_request_cancelled, due=cancellations)},
            decode=decode_event,
            after_batch=partial(cancellations.tell, scheduler.notify),
        )
    )
    roster_changes = RosterChanges()
    runtime.add_consumer(
        EventConsumer(
            name=PARTICIPANTS_CONSUMER,
            stream=DEPLOYER_SVC_PARTICIPANTS.stream.name,
            handlers={
                ParticipantApplied: acknowledged,
                ParticipantRejected: acknowledged,
                RosterPurged: on_roster_purged,
            },
            batch_handlers={
                kind: partial(on_roster_events, changes=roster_changes) for kind in ROSTER_EVENTS
            },
            decode=decode_event,
            after_batch=partial(roster_changes.tell, roster_sync.changed),
        )
    )
    runtime.add_background("schedule", scheduler.run)
    runtime.add_background("roster-sync", roster_sync.run)
    runtime.add_background("reconcile", scheduler.reconcile_forever)
    return runtime
