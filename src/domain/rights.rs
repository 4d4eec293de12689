//! People and rights. A user holds grants: a role on one product, or everywhere
//! (`product = None`). What each role allows is [`Role::allows`]; whether a set of grants
//! allows an action on a scope is [`allows`]. Nothing else decides rights.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including people and rights.
    Admin,
    /// Changes the catalog (models, channels, firmware, devices) and may use drafts.
    Maintainer,
    /// Reads.
    Viewer,
    /// Machine users on devices: may request firmware updates and nothing else.
    Device,
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read catalog objects, devices and sessions.
    Read,
    /// Create, change or delete catalog objects and devices.
    Write,
    /// Manage people, grants and products.
    Manage,
    /// Ask for a firmware update (open a session).
    RequestUpdate,
    /// Receive draft firmware (`allow_draft_firmware`).
    UseDrafts,
}

/// Where an action applies: on everything, or inside one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Product(Uuid),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub role: Role,
    /// `None`: everywhere.
    pub product: Option<Uuid>,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Maintainer, Role::Viewer, Role::Device];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Viewer => "viewer",
            Role::Device => "device",
        }
    }

    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Maintainer => matches!(action, Read | Write | RequestUpdate | UseDrafts),
            Role::Viewer => matches!(action, Read),
            Role::Device => matches!(action, RequestUpdate),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("role: {s:?} is not one of admin, maintainer, viewer, device")))
    }
}

impl Grant {
    /// A global grant covers every scope; a product grant covers only its product.
    pub fn covers(&self, scope: Scope) -> bool {
        match (self.product, scope) {
            (None, _) => true,
            (Some(p), Scope::Product(q)) => p == q,
            (Some(_), Scope::Global) => false,
        }
    }
}

/// Whether `grants` allow `action` on `scope`.
pub fn allows(grants: &[Grant], action: Action, scope: Scope) -> bool {
    grants.iter().any(|g| g.covers(scope) && g.role.allows(action))
}

/// Which products `grants` allow `action` in: `None` means every product (a global grant).
pub fn products_allowing(grants: &[Grant], action: Action) -> Option<Vec<Uuid>> {
    if grants.iter().any(|g| g.product.is_none() && g.role.allows(action)) {
        return None;
    }
    Some(grants.iter().filter(|g| g.role.allows(action)).filter_map(|g| g.product).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_table() {
        use Action::*;
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Maintainer, [true, true, false, true, true]),
            (Role::Viewer, [true, false, false, false, false]),
            (Role::Device, [false, false, false, true, false]),
        ];
        for (role, expected) in table {
            for (action, want) in [Read, Write, Manage, RequestUpdate, UseDrafts].into_iter().zip(expected) {
                assert_eq!(role.allows(action), want, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn product_grants_stay_in_their_product() {
        let p = Uuid::new_v4();
        let q = Uuid::new_v4();
        let grants = [Grant { role: Role::Maintainer, product: Some(p) }];
        assert!(allows(&grants, Action::Write, Scope::Product(p)));
        assert!(!allows(&grants, Action::Write, Scope::Product(q)));
        assert!(!allows(&grants, Action::Write, Scope::Global));
        assert_eq!(products_allowing(&grants, Action::Read), Some(vec![p]));
        let global = [Grant { role: Role::Viewer, product: None }];
        assert!(allows(&global, Action::Read, Scope::Product(q)));
        assert_eq!(products_allowing(&global, Action::Read), None);
    }

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
