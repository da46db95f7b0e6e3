"""Composition root: the only place that builds the gateway's adapters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Server
from litestar.static_files import create_static_files_router

from gateway.access_log import make_access_log
from gateway.accounts import Accounts, Clock, utcnow
from gateway.audit import Audit
from gateway.auth import BearerTokens, Passwords
from gateway.context import Gateway, send_correlation_header
from gateway.controllers.account_pages import (
    account_end_every_session,
    account_end_session,
    account_page,
    account_profile,
    account_revoke_token,
    confirm,
    confirm_form,
    sign_out,
)
from gateway.controllers.admin_pages import (
    admin_audit,
    admin_create_user,
    admin_deployments,
    admin_index,
    admin_policy,
    admin_redeploy,
    admin_user_disable,
    admin_user_enable,
    admin_user_mfa_reset,
    admin_user_roles,
    admin_users,
)
from gateway.controllers.audit import AuditController
from gateway.controllers.auth import AuthController
from gateway.controllers.calendar import CalendarController
from gateway.controllers.course_pages import (
    add_tutor_page,
    cancel_course_page,
    course_page,
    course_timeline,
    decide_applications,
    leave_course_page,
    my_courses_page,
    remove_tutor_page,
    rotate_join_code_page,
    set_joining_page,
)
from gateway.controllers.courses import CourseController, JoinController
from gateway.controllers.deployments import DeploymentController
from gateway.controllers.governance_audit import GovernanceAuditController
from gateway.controllers.health import healthz, index, readyz
from gateway.controllers.identities import IdentityController
from gateway.controllers.joining import apply_to_join, join_course, join_start
from gateway.controllers.me import MeController
from gateway.controllers.mfa import MfaController, MfaResetController
from gateway.controllers.mfa_pages import second_step, second_step_form, setup_form
from gateway.controllers.oauth import OAuthController, openid_configuration
from gateway.controllers.oidc import oidc_callback, oidc_sign_in
from gateway.controllers.password_page import change_password, password_form
from gateway.controllers.password_reset import (
    PasswordResetController,
    reset_password_page,
    verify_email_page,
)
from gateway.controllers.policy import PolicyController
from gateway.controllers.request_pages import (
    change_form,
    edit_form,
    propose_change,
    request_form,
    save_edit,
    submit_request,
)
from gateway.controllers.requests import RequestController
from gateway.controllers.review_pages import (
    capacity_calendar,
    decide_change,
    decide_request,
    governance_audit,
    review_queue,
    review_request,
)
from gateway.controllers.reviews import ReviewController
from gateway.controllers.signin import sign_in, sign_in_form
from gateway.controllers.tokens import TokenController
from gateway.controllers.users import UserController
from gateway.cookies import SESSION, cookie_name
from gateway.dependencies import DEPENDENCIES
from gateway.errors import EXCEPTION_HANDLERS, reject_invalid_body
from gateway.headers import STATIC_PREFIX, make_security_headers
from gateway.identity.providers import IdentityProviders
from gateway.identity.signin import IdentitySignIn
from gateway.join_limit import JoinCodeGuessLimit
from gateway.mail import Mailer
from gateway.mfa.keys import SecurityKeys
from gateway.mfa.service import SecondFactors
from gateway.oauth.provider import Provider
from gateway.password_rules import common_passwords
from gateway.personal_tokens import PersonalTokens
from gateway.settings import INITIAL_ADMIN_PASSWORD_FILE, SERVICE, GatewaySettings
from gateway.store import VERSIONS_DIR, metadata
from gateway.throttle import SignInThrottle, ThrottlePolicy
from gateway.web.render import template_config
from gateway.web.swagger import LocalSwaggerPlugin
from jhaas_runtime.db import Database
from jhaas_runtime.logs import get_logger
from jhaas_runtime.messaging import connect
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.rpc import RpcClient

log = get_logger(__name__)

API_PREFIX = "/api/v1"
# Scripts and styles of the pages (no inline script: the CSP forbids it).
STATIC_DIR = Path(__file__).parent / "static"


def reset_throttle_policy(settings: GatewaySettings) -> ThrottlePolicy:
    # Three asks per account and address pass at once (the free "failures" plus the
    # one checked), then each waits longer; an address gets ten times as many.
    return ThrottlePolicy(
        free_failures=2,
        max_delay_seconds=settings.login_max_delay_seconds,
        window_seconds=settings.login_window_seconds,
    )


def build_gateway(
    settings: GatewaySettings, *, passwords: Passwords | None = None, clock: Clock = utcnow
) -> Gateway:
    db = Database(settings.runtime.database_url, pool_size=settings.runtime.db_pool_size)
    accounts = Accounts(
        db,
        passwords or Passwords(),
        session_ttl=settings.session_ttl,
        clock=clock,
        initial_password_file=settings.data_dir / INITIAL_ADMIN_PASSWORD_FILE,
    )
    tokens = BearerTokens(settings.jwt_secret, issuer=settings.token_issuer)
    throttle = SignInThrottle(db, settings.throttle_policy, settings.jwt_secret, clock)

    def rpc() -> RpcClient:  # the bus is connected by the lifespan, after this
        return gateway.rpc

    oauth = Provider(
        db=db,
        issuer=settings.token_issuer,
        secret=settings.jwt_secret,
        token_ttl_seconds=settings.oauth_token_ttl_seconds,
        key_rotation=timedelta(days=settings.oauth_key_rotation_days),
        rpc=rpc,
        clock=clock,
    )
    mfa = SecondFactors(db, settings, clock)
    audit = Audit(db, clock)
    gateway = Gateway(
        settings=settings,
        db=db,
        accounts=accounts,
        tokens=tokens,
        throttle=throttle,
        oauth=oauth,
        audit=audit,
        identity=build_identity(settings, db, accounts, audit, clock),
        join_limit=JoinCodeGuessLimit(
            clock, allowed=settings.join_code_misses, window=timedelta(minutes=10)
        ),
        mfa=mfa,
        security_keys=SecurityKeys(mfa),
        personal_tokens=PersonalTokens(db, max_days=settings.api_token_max_days, clock=clock),
        reset_throttle=SignInThrottle(
            db, reset_throttle_policy(settings), settings.jwt_secret + b"\0password-reset", clock
        ),
    )
    if settings.smtp is not None:
        gateway.mailer = Mailer(settings.smtp, settings.mail_from)
    return gateway


def build_identity(
    settings: GatewaySettings, db: Database, accounts: Accounts, audit: Audit, clock: Clock
) -> IdentitySignIn:
    providers = IdentityProviders(
        settings.oidc_providers,
        timeout_seconds=settings.oidc_timeout_seconds,
        clock=clock,
        leeway_seconds=settings.oidc_clock_skew_seconds,
        metadata_ttl_seconds=settings.oidc_metadata_ttl_seconds,
    )
    return IdentitySignIn(
        db=db,
        providers=providers,
        accounts=accounts,
        audit=audit,
        secret=settings.jwt_secret,
        public_url=settings.public_url,
        clock=clock,
    )


def openapi_config(settings: GatewaySettings) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="JHaaS API",
        version="1.0.0",
        description=(
            "JupyterHub as a Service: request a hub for a course, review it, follow its "
            "deployment, let people join its course and decide who takes part. Sign in at "
            "POST /api/v1/auth/login; send the token as "
            "`Authorization: Bearer <token>`, or use the session cookie together with "
            "the X-CSRF-Token header on unsafe methods."
        ),
        path="/schema",
        render_plugins=[LocalSwaggerPlugin()],
        servers=[Server(url=settings.public_url.rstrip("/"))],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                "SessionCookie": SecurityScheme(
                    type="apiKey", name=cookie_name(settings, SESSION), security_scheme_in="cookie"
                ),
            }
        ),
        security=[{"BearerToken": []}, {"SessionCookie": []}],
    )


def create_app(
    settings: GatewaySettings, *, passwords: Passwords | None = None, clock: Clock = utcnow
) -> Litestar:
    gateway = build_gateway(settings, passwords=passwords, clock=clock)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await upgrade_to_head(gateway.db, metadata, VERSIONS_DIR)
        await asyncio.to_thread(common_passwords)  # not on the first request that needs it
        await gateway.accounts.ensure_first_admin(
            settings.admin_username, settings.admin_password, settings.data_dir
        )
        gateway.nc = await connect(
            settings.runtime.nats_url,
            SERVICE,
            settings.runtime.nats_seed_file,
            settings.runtime.nats_ca_file,
        )
        gateway.rpc_client = RpcClient(gateway.nc, timeout=settings.runtime.rpc_timeout_seconds)
        log.info(
            "gateway started",
            nats=settings.runtime.nats_url,
            database=gateway.db.url.render_as_string(hide_password=True),
            public_url=settings.public_url,
        )
        try:
            yield
        finally:
            nc = gateway.nc
            if nc is not None and not nc.is_closed:
                # Drain finishes the calls in flight; a connection that is
                # reconnecting has nothing to drain and is simply closed.
                await (nc.drain() if nc.is_connected else nc.close())
            gateway.rpc_client = None
            gateway.oauth.close()
            if gateway.mailer is not None:
                await gateway.mailer.close()
            await gateway.identity.providers.aclose()
            await gateway.db.dispose()
            log.info("gateway stopped")

    api = Router(
        API_PREFIX,
        route_handlers=[
            AuthController,
            IdentityController,
            UserController,
            AuditController,
            MfaController,
            MfaResetController,
            RequestController,
            ReviewController,
            CalendarController,
            GovernanceAuditController,
            PolicyController,
            DeploymentController,
            CourseController,
            JoinController,
            PasswordResetController,
            MeController,
            TokenController,
        ],
    )
    return Litestar(
        route_handlers=[
            api,
            healthz,
            readyz,
            index,
            OAuthController,
            openid_configuration,
            sign_in_form,
            sign_in,
            second_step_form,
            second_step,
            setup_form,
            password_form,
            change_password,
            oidc_sign_in,
            oidc_callback,
            join_start,
            join_course,
            request_form,
            submit_request,
            change_form,
            propose_change,
            my_courses_page,
            course_page,
            course_timeline,
            decide_applications,
            rotate_join_code_page,
            set_joining_page,
            add_tutor_page,
            remove_tutor_page,
            cancel_course_page,
            leave_course_page,
            review_queue,
            review_request,
            decide_request,
            decide_change,
            capacity_calendar,
            governance_audit,
            admin_index,
            admin_users,
            admin_create_user,
            admin_user_roles,
            admin_user_disable,
            admin_user_enable,
            admin_user_mfa_reset,
            admin_deployments,
            admin_redeploy,
            admin_policy,
            admin_audit,
            account_page,
            account_profile,
            account_end_session,
            account_end_every_session,
            account_revoke_token,
            confirm_form,
            confirm,
            sign_out,
            edit_form,
            save_edit,
            apply_to_join,
            reset_password_page,
            verify_email_page,
            create_static_files_router(
                path=STATIC_PREFIX.rstrip("/"),
                directories=[STATIC_DIR],
                include_in_schema=False,
                send_as_attachment=False,
            ),
        ],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=reject_invalid_body,
        before_send=[send_correlation_header, make_security_headers(settings)],
        middleware=[
            make_access_log(
                settings.trusted_proxies,
                service=SERVICE,
                level=settings.runtime.log_level,
                fmt=settings.runtime.log_format,
            )
        ],
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        state=State({"gateway": gateway}),
        openapi_config=openapi_config(settings),
        template_config=template_config(),
        logging_config=None,
    )
