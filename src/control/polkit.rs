//! Who may change things: every method that starts, stops, restarts, disconnects or reloads
//! asks polkit whether its *caller* (the sender's bus name, never this process) holds
//! [`ACTION`]. Reading properties needs nothing. Root is allowed without asking (polkit
//! allows root anyway, and an appliance without polkitd must still be manageable by root).
//! Anything but a clear yes is a no: polkit unreachable, an error, a challenge nobody
//! answered. On a session bus (a user's own server) only that user may change things.

use std::collections::HashMap;

use zbus::message::{Flags, Header};
use zbus::{Connection, fdo};
use zbus_polkit::policykit1::{AuthorityProxy, CheckAuthorizationFlags, Subject};

/// The polkit action of every changing method (see `polkit/org.voyandz.Voyandz1.policy`).
pub const ACTION: &str = "org.voyandz.Voyandz1.manage";
/// The file that declares [`ACTION`], as the package installs it.
const ACTION_FILE: &str = "org.voyandz.Voyandz1.policy";

/// How callers are authorised: by polkit on the system bus, by their uid on a session bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Ask polkit (the system bus).
    Polkit,
    /// Allow the server's own user (a session bus is that user's alone).
    OwnUser,
}

impl Gate {
    /// Allows the call whose header is `header` to do `what` (a few words for the log and
    /// the error, e.g. `stop feed "cam"`), or answers why not: `AccessDenied`, or
    /// `InteractiveAuthorizationRequired` when a password would do but the call did not let
    /// polkit ask for one.
    pub async fn authorize(
        self,
        connection: &Connection,
        header: &Header<'_>,
        what: &str,
    ) -> fdo::Result<()> {
        let sender = header.sender().ok_or_else(|| {
            fdo::Error::AccessDenied(format!("cannot {what}: the call names no sender"))
        })?;
        let uid = match caller_uid(connection, sender).await {
            Ok(uid) => uid,
            Err(error) => return Err(denied(what, sender, None, error.to_string().into())),
        };
        if uid == 0 {
            return Ok(());
        }
        let verdict = match self {
            Gate::OwnUser if uid == rustix::process::geteuid().as_raw() => Ok(()),
            Gate::OwnUser => Err(String::from(
                "only the server's own user may change it on a session bus",
            )
            .into()),
            Gate::Polkit => ask_polkit(connection, header).await,
        };
        verdict.map_err(|refusal| denied(what, sender, Some(uid), refusal))
    }
}

async fn caller_uid(
    connection: &Connection,
    sender: &zbus::names::UniqueName<'_>,
) -> zbus::Result<u32> {
    let bus = fdo::DBusProxy::new(connection).await?;
    Ok(bus.get_connection_unix_user(sender.clone().into()).await?)
}

/// Why a change is not allowed.
struct Refusal {
    reason: String,
    /// polkit would accept an administrator's password, but the call did not allow asking.
    needs_interaction: bool,
}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self {
            reason,
            needs_interaction: false,
        }
    }
}

/// Ok when polkit says yes; otherwise why not.
async fn ask_polkit(connection: &Connection, header: &Header<'_>) -> Result<(), Refusal> {
    let unreachable =
        |error: zbus::Error| format!("polkit cannot be asked ({error}), so no change is allowed");
    let subject = Subject::new_for_message_header(header).map_err(|error| error.to_string())?;
    let authority = AuthorityProxy::new(connection).await.map_err(unreachable)?;
    // A caller that can answer a password prompt says so; then polkit may ask its agent.
    let interactive = header
        .primary()
        .flags()
        .contains(Flags::ALLOW_INTERACTIVE_AUTH);
    let flags = if interactive {
        CheckAuthorizationFlags::ALLOW_USER_INTERACTION
    } else {
        CheckAuthorizationFlags::empty()
    };
    let result = authority
        .check_authorization(&subject, ACTION, &HashMap::new(), flags, "")
        .await
        .map_err(|error| match error {
            // polkit answered, with an error of its own: the admin must be pointed at the
            // action file rather than at polkitd.
            zbus::Error::MethodError(name, detail, _)
                if name
                    .as_str()
                    .starts_with("org.freedesktop.PolicyKit1.Error") =>
            {
                let detail = detail.unwrap_or_default();
                let hint = if name.as_str().ends_with(".NotAuthorized") {
                    "the server's user must be the action's owner \
                     (org.freedesktop.policykit.owner) in"
                } else {
                    "is it installed?"
                };
                format!(
                    "polkit refused the check ({name}: {detail}); {hint} \
                     /usr/share/polkit-1/actions/{ACTION_FILE}"
                )
            }
            other => unreachable(other),
        })?;
    match (result.is_authorized, result.is_challenge) {
        (true, _) => Ok(()),
        (false, true) if !interactive => Err(Refusal {
            reason: format!(
                "polkit asks for authentication as an administrator for {ACTION}: call again \
                 allowing interactive authorization"
            ),
            needs_interaction: true,
        }),
        (false, true) => Err(format!(
            "polkit asks for authentication as an administrator for {ACTION}, and none was given"
        )
        .into()),
        (false, false) => Err(format!("polkit does not authorise {ACTION}").into()),
    }
}

fn denied(
    what: &str,
    sender: &zbus::names::UniqueName<'_>,
    uid: Option<u32>,
    refusal: Refusal,
) -> fdo::Error {
    let reason = refusal.reason;
    tracing::warn!(caller = %sender, uid, action = what, %reason, "D-Bus call denied");
    let message = format!("not allowed to {what}: {reason}");
    if refusal.needs_interaction {
        fdo::Error::InteractiveAuthorizationRequired(message)
    } else {
        fdo::Error::AccessDenied(message)
    }
}
