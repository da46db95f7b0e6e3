"""The authorization matrix: one entry per gateway route (see authz_matrix.py;
the calls each entry makes are in authz_calls.py).

Columns of every row:  anonymous  none  participant  leader  governance  admin.
"own" is the caller's own resource of the route's kind, "other" the same kind
of resource of someone else. Allowed cells that change the world make their
own victim (a fresh request, course, applicant or person); refused cells aim
at the world's standing resources, and check that those stayed as they were.
"""

from __future__ import annotations

from authz_calls import (
    NO_OWN_COURSE,
    NO_OWN_REQUEST,
    a_course,
    a_join_code,
    a_request,
    add_tutor,
    apply_api,
    apply_page,
    authorize,
    cancel_request,
    change_password,
    change_password_page,
    changed_request,
    create_user,
    decide_applications,
    decision,
    edit_request,
    ends_session,
    join_page,
    leave,
    list_deployments,
    list_requests,
    list_sessions,
    login,
    me,
    my_courses,
    one_participation,
    password_form,
    redeploy,
    remove_tutor,
    revoke_session,
    rotate,
    schema_page,
    set_joining,
    sign_in_form,
    static_file,
    submit,
    token,
    update_user,
    userinfo,
)
from authz_matrix import NA, Entry, no_params, public, route

# fmt: off
#          anonymous none participant leader governance admin
SIGNED_IN = (401, 200, 200, 200, 200, 200)
ADMINS_ONLY = (401, 403, 403, 403, 403, 200)
NO_BODY = (401, 204, 204, 204, 204, 204)
# The course's staff-only routes: the leader; a participant of the course knows it
# exists (403); governance and admins see every request (403); to anyone else the
# course does not exist (404), as request-svc answers for its request.
STAFF_OWN = (NA, NA, 403, 200, NA, NA)
STAFF_OTHER = (401, 404, 404, 404, 403, 403)

ENTRIES: tuple[Entry, ...] = (
    # --- auth: everyone acts on their own account only
    route("POST", "/api/v1/auth/login", login, who="anyone, with their own password",
          own=(NA, 200, 200, 200, 200, 200), other=(401, 401, 401, 401, 401, 401),
          no_own="anonymous has no account"),
    route("POST", "/api/v1/auth/logout", ends_session, who="anyone signed in", any=NO_BODY),
    route("POST", "/api/v1/auth/logout-everywhere", ends_session, who="anyone signed in",
          any=NO_BODY),
    route("POST", "/api/v1/auth/password", change_password, who="anyone signed in",
          any=NO_BODY),
    route("GET", "/api/v1/auth/me", me, who="anyone signed in", any=SIGNED_IN),
    route("GET", "/api/v1/auth/sessions", list_sessions, who="anyone signed in: their own",
          any=SIGNED_IN),
    route("DELETE", "/api/v1/auth/sessions/{session_id}", revoke_session,
          who="anyone signed in: their own sessions",
          own=(NA, 204, 204, 204, 204, 204), other=(401, 404, 404, 404, 404, 404),
          no_own="anonymous has no session"),
    # --- users and audit: admins
    route("GET", "/api/v1/users", no_params, who="admins", any=ADMINS_ONLY),
    route("POST", "/api/v1/users", create_user, who="admins (with step-up)",
          any=(401, 403, 403, 403, 403, 201)),
    route("PATCH", "/api/v1/users/{user_id}", update_user, who="admins (with step-up)",
          own=(NA, 403, 403, 403, 403, 200), other=(401, 403, 403, 403, 403, 200),
          no_own="anonymous has no user id"),
    route("GET", "/api/v1/audit", no_params, who="admins", any=ADMINS_ONLY),
    # --- requests: their leader; governance and admins read all; admins cancel
    route("POST", "/api/v1/requests", submit, who="leaders and admins",
          any=(401, 403, 403, 201, 403, 201)),
    route("GET", "/api/v1/requests", list_requests,
          who="anyone signed in: their own (scope=mine); governance and admins: all",
          own=(401, 200, 200, 200, 200, 200), other=(401, 403, 403, 403, 200, 200)),
    route("GET", "/api/v1/requests/{request_id}", a_request,
          who="its leader, governance, admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 200, 200),
          no_own=NO_OWN_REQUEST),
    route("PATCH", "/api/v1/requests/{request_id}", edit_request, who="its leader",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 403),
          no_own=NO_OWN_REQUEST),
    route("POST", "/api/v1/requests/{request_id}/withdraw", changed_request, who="its leader",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 403),
          no_own=NO_OWN_REQUEST),
    route("POST", "/api/v1/requests/{request_id}/cancel", cancel_request,
          who="its leader and admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 403, 200),
          no_own=NO_OWN_REQUEST),
    # --- reviews: governance and admins, never on their own request
    route("GET", "/api/v1/reviews", no_params, who="governance and admins",
          any=(401, 403, 403, 403, 200, 200)),
    route("GET", "/api/v1/reviews/{request_id}", a_request,
          who="the request's leader, governance, admins",
          own=(NA, NA, NA, 200, NA, 200), other=(401, 404, 404, 404, 200, 200),
          no_own=NO_OWN_REQUEST),
    *(
        route("POST", f"/api/v1/reviews/{{request_id}}/{action}", decision(body),
              who="governance and admins, not on their own request",
              own=(NA, NA, NA, 403, NA, 403), other=(401, 404, 404, 404, 200, 200),
              no_own=NO_OWN_REQUEST)
        for action, body in (
            ("approve", {"comment": "matrix"}),
            ("reject", {"reason": "matrix"}),
            ("request-changes", {"comment": "matrix"}),
        )
    ),
    # --- deployments
    route("GET", "/api/v1/deployments", list_deployments,
          who="leaders (their own), governance, admins",
          own=(NA, NA, NA, 200, NA, NA), other=(401, 403, 403, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/deployments/{request_id}/redeploy", redeploy,
          who="admins (with step-up), of a failed hub (else 409)",
          own=(NA, NA, NA, 403, NA, NA), other=(401, 403, 403, 403, 403, 409),
          no_own=NO_OWN_COURSE),
    # --- courses: the leader (tutors read and decide), participants leave
    route("GET", "/api/v1/courses", my_courses, who="anyone signed in: their own",
          any=SIGNED_IN),
    route("GET", "/api/v1/courses/{request_id}", a_course, who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/join-code/rotate", rotate, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("PUT", "/api/v1/courses/{request_id}/join-code", set_joining, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("GET", "/api/v1/courses/{request_id}/participations", a_course,
          who="its leader and tutors", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/accept",
          decide_applications({}), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/reject",
          decide_applications({"reason": "matrix"}), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/{participation_id}/remove",
          one_participation("accepted"), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/participations/{participation_id}/reopen",
          one_participation("rejected"), who="its leader and tutors",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/leave", leave,
          who="a participant of the course (pending or accepted)",
          own=(NA, NA, 200, 404, NA, NA), other=(401, 404, 404, 404, 404, 404),
          no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/courses/{request_id}/tutors", add_tutor, who="its leader",
          own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("DELETE", "/api/v1/courses/{request_id}/tutors/{user_id}", remove_tutor,
          who="its leader", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    route("GET", "/api/v1/courses/{request_id}/roster.csv", a_course,
          who="its leader and tutors", own=STAFF_OWN, other=STAFF_OTHER, no_own=NO_OWN_COURSE),
    # --- joining: anyone signed in, with the code
    route("GET", "/api/v1/join/{code}", a_join_code, who="anyone signed in, with the code",
          own=(NA, NA, 200, 200, NA, NA), other=SIGNED_IN, no_own=NO_OWN_COURSE),
    route("POST", "/api/v1/join/{code}", apply_api,
          who="anyone signed in, with the code; not its leader, tutors or who applied",
          own=(NA, NA, 409, 409, NA, NA), other=(401, 201, 201, 201, 201, 201),
          no_own=NO_OWN_COURSE),
    # --- pages (the session cookie)
    public("GET", "/signin"),
    route("POST", "/signin", sign_in_form, who="anyone, with their own password",
          own=(NA, 303, 303, 303, 303, 303), other=(401, 401, 401, 401, 401, 401),
          no_own="anonymous has no account"),
    route("GET", "/signin/password", password_form,
          who="anyone signed in: their own (strangers: to sign in)",
          any=(303, 200, 200, 200, 200, 200)),
    route("POST", "/signin/password", change_password_page,
          who="anyone signed in, with their current password (strangers: to sign in)",
          any=(303, 303, 303, 303, 303, 303)),
    public("GET", "/join"),
    route("GET", "/join/{code}", join_page, who="anyone signed in (strangers: to sign in)",
          own=(NA, NA, 200, 200, NA, NA), other=(303, 200, 200, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    route("POST", "/join/{code}", apply_page, who="anyone signed in (strangers: to sign in)",
          own=(NA, NA, 409, 409, NA, NA), other=(303, 200, 200, 200, 200, 200),
          no_own=NO_OWN_COURSE),
    # --- nobody's data
    public("GET", "/"),
    public("GET", "/healthz"),
    public("GET", "/readyz"),
    public("GET", "/static/{file_path}", build=static_file),
    public("GET", "/schema"),
    public("GET", "/schema/swagger"),
    public("GET", "/schema/openapi.json"),
    public("GET", "/schema/oauth2-redirect.html"),
    public("GET", "/schema/{path}", 404, build=schema_page),
    public("GET", "/.well-known/openid-configuration"),
    public("GET", "/oauth/jwks"),
    # --- the hubs' OAuth provider
    route("GET", "/oauth/authorize", authorize,
          who="the course's leader, tutors and accepted participants (a browser session)",
          own=(NA, NA, 302, 302, NA, NA), other=(302, 403, 403, 403, 403, 403),
          no_own=NO_OWN_COURSE),
    route("POST", "/oauth/token", token,
          who="the hub the code was issued to (its client secret)",
          own=(NA, NA, 200, 200, NA, NA), other=(400, 400, 400, 400, 400, 400),
          no_own="only the course's people get a code for its hub"),
    *(
        route(method, "/oauth/userinfo", userinfo, who="a hub's access token",
              own=(NA, NA, 200, 200, NA, NA), other=(401, 401, 401, 401, 401, 401),
              no_own="only the course's people get an access token for its hub")
        for method in ("GET", "POST")
    ),
)
# fmt: on
