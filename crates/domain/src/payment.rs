//! Payment methods and the rules of their roles.
//!
//! Invariants, kept by [`apply`] and checked by property tests: at most one
//! PRIMARY and one SECONDARY, and whenever a tenant has payment methods,
//! exactly one of them is PRIMARY.

use jiff::Timestamp;

use crate::contact::Contact;
use crate::{Error, Reason};

/// The contract's `payment_methodPaymentMethodRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentRole {
    Primary,
    Secondary,
    Normal,
}

impl PaymentRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "PRIMARY",
            Self::Secondary => "SECONDARY",
            Self::Normal => "NORMAL",
        }
    }

    /// A role by its stored name (`PRIMARY`, `SECONDARY`, `NORMAL`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PRIMARY" => Some(Self::Primary),
            "SECONDARY" => Some(Self::Secondary),
            "NORMAL" => Some(Self::Normal),
            _ => None,
        }
    }
}

/// Longest payment provider token.
pub const MAX_TOKEN: usize = 1024;

/// Checks a payment provider token as a request carries it: present, one
/// line, at most [`MAX_TOKEN`] characters.
pub fn check_token(field: &str, token: &str) -> Result<(), Error> {
    if token.trim().is_empty() {
        return Err(Error::invalid(format!("{field}: is required")));
    }
    crate::text::single_line(field, token, MAX_TOKEN)
}

/// A stored payment method: the provider's token and what may be shown,
/// never card numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub name: String,
    pub role: PaymentRole,
    pub provider: String,
    pub token: String,
    /// Shown to people, e.g. "test card ending 4242".
    pub display: String,
    pub contact: Contact,
    pub created_at: Timestamp,
}

/// A method's name and role, in creation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub role: PaymentRole,
}

/// A change to a tenant's payment methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// A new method; `requested` is the role asked for (the first method is
    /// always PRIMARY).
    Create {
        name: String,
        requested: Option<PaymentRole>,
    },
    MakePrimary(String),
    MakeSecondary(String),
    /// Exchange the roles of the primary and the secondary; `name` must be one of them.
    Swap(String),
    /// Remove a method; a removed primary is succeeded by the secondary or
    /// else the oldest other method. With none left, refused on a paid plan.
    Delete {
        name: String,
        on_paid_plan: bool,
    },
}

fn find(slots: &[Slot], name: &str) -> Result<usize, Error> {
    slots
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| Error::not_found(format!("payment method {name:?} not found")))
}

fn set(slots: &mut [Slot], role: PaymentRole, to: PaymentRole) {
    for s in slots.iter_mut().filter(|s| s.role == role) {
        s.role = to;
    }
}

/// The slots after `change`, in creation order, or why it is refused.
pub fn apply(slots: &[Slot], change: &RoleChange) -> Result<Vec<Slot>, Error> {
    use PaymentRole::*;
    let mut out = slots.to_vec();
    match change {
        RoleChange::Create { name, requested } => {
            if out.iter().any(|s| &s.name == name) {
                return Err(
                    Error::already_exists(format!("payment method {name:?} already exists"))
                        .with_reason(Reason::PaymentMethodExists),
                );
            }
            let role = if out.is_empty() {
                Primary
            } else {
                requested.unwrap_or(Normal)
            };
            if role != Normal {
                set(&mut out, role, Normal);
            }
            out.push(Slot {
                name: name.clone(),
                role,
            });
        }
        RoleChange::MakePrimary(name) => {
            let i = find(&out, name)?;
            if out[i].role != Primary {
                set(&mut out, Primary, Normal);
                out[i].role = Primary;
            }
        }
        RoleChange::MakeSecondary(name) => {
            let i = find(&out, name)?;
            match out[i].role {
                Secondary => {}
                Normal => {
                    set(&mut out, Secondary, Normal);
                    out[i].role = Secondary;
                }
                Primary => {
                    // Someone must take over as primary: the secondary, else
                    // the oldest other method.
                    let successor = out
                        .iter()
                        .position(|s| s.role == Secondary)
                        .or_else(|| out.iter().position(|s| s.name != *name))
                        .ok_or_else(|| {
                            Error::precondition(format!(
                                "payment method {name:?} is the only one; add another before making it secondary"
                            ))
                            .with_reason(Reason::OnlyPaymentMethod)
                        })?;
                    out[successor].role = Primary;
                    out[i].role = Secondary;
                }
            }
        }
        RoleChange::Swap(name) => {
            let i = find(&out, name)?;
            let secondary = out.iter().position(|s| s.role == Secondary).ok_or_else(|| {
                Error::precondition("there is no secondary payment method to swap with the primary")
                    .with_reason(Reason::NoSecondaryPaymentMethod)
            })?;
            if out[i].role == Normal {
                return Err(Error::precondition(format!(
                    "payment method {name:?} is neither the primary nor the secondary"
                ))
                .with_reason(Reason::PaymentMethodNotPrimaryOrSecondary));
            }
            let primary = out.iter().position(|s| s.role == Primary).ok_or_else(|| {
                Error::precondition("there is no primary payment method to swap with the secondary")
                    .with_reason(Reason::NoPrimaryPaymentMethod)
            })?;
            out[primary].role = Secondary;
            out[secondary].role = Primary;
        }
        RoleChange::Delete { name, on_paid_plan } => {
            let i = find(&out, name)?;
            let removed = out.remove(i);
            if removed.role == Primary {
                let successor = out
                    .iter()
                    .position(|s| s.role == Secondary)
                    .or_else(|| (!out.is_empty()).then_some(0));
                match successor {
                    Some(j) => out[j].role = Primary,
                    None if *on_paid_plan => {
                        return Err(Error::precondition(format!(
                            "payment method {name:?} is the only one and the plan is paid; add another first"
                        ))
                        .with_reason(Reason::PaymentMethodRequired));
                    }
                    None => {}
                }
            }
        }
    }
    Ok(out)
}

/// The methods a charge round tries, in order: the primary, then the secondary.
fn charge_order(slots: &[Slot]) -> [Option<&str>; 2] {
    let with = |role| slots.iter().find(|s| s.role == role).map(|s| s.name.as_str());
    [with(PaymentRole::Primary), with(PaymentRole::Secondary)]
}

/// Whether a change gives a charge round something new to try: another
/// primary or another secondary (a method added in one of those roles or as
/// the first, `primary`, `secondary`, `swap-primary`, a deleted primary's
/// successor). Then the tenant's unpaid invoices are charged again
/// (dunning). A NORMAL method added, or a role call that changes nothing,
/// would only repeat the round that failed.
pub fn charge_order_changed(before: &[Slot], after: &[Slot]) -> bool {
    charge_order(before) != charge_order(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentRole::*;
    use proptest::prelude::*;

    fn roles(slots: &[Slot]) -> Vec<(&str, PaymentRole)> {
        slots.iter().map(|s| (s.name.as_str(), s.role)).collect()
    }

    fn create(slots: &[Slot], name: &str, requested: Option<PaymentRole>) -> Vec<Slot> {
        apply(
            slots,
            &RoleChange::Create {
                name: name.into(),
                requested,
            },
        )
        .unwrap()
    }

    #[test]
    fn only_a_new_primary_or_secondary_charges_again() {
        let none: &[Slot] = &[];
        let one = create(none, "a", None);
        assert!(
            charge_order_changed(none, &one),
            "the first method is the primary"
        );
        let normal = create(&one, "b", None);
        assert!(
            !charge_order_changed(&one, &normal),
            "a NORMAL method is never charged"
        );
        let secondary = create(&normal, "c", Some(Secondary));
        assert!(charge_order_changed(&normal, &secondary));
        let primary = apply(&secondary, &RoleChange::MakePrimary("b".into())).unwrap();
        assert!(charge_order_changed(&secondary, &primary));
        let again = apply(&primary, &RoleChange::MakePrimary("b".into())).unwrap();
        assert!(!charge_order_changed(&primary, &again), "nothing changed");
        let swapped = apply(&again, &RoleChange::Swap("b".into())).unwrap();
        assert!(charge_order_changed(&again, &swapped));
        let deleted = apply(
            &swapped,
            &RoleChange::Delete {
                name: "a".into(),
                on_paid_plan: true,
            },
        )
        .unwrap();
        assert_eq!(roles(&deleted), [("b", Secondary), ("c", Primary)]);
        assert!(
            !charge_order_changed(&swapped, &deleted),
            "a NORMAL method deleted"
        );
        let successor = apply(
            &deleted,
            &RoleChange::Delete {
                name: "c".into(),
                on_paid_plan: true,
            },
        )
        .unwrap();
        assert!(
            charge_order_changed(&deleted, &successor),
            "the secondary took over"
        );
    }

    #[test]
    fn the_first_method_is_primary_and_requested_roles_displace() {
        let s = create(&[], "a", Some(Secondary));
        assert_eq!(roles(&s), [("a", Primary)]);
        let s = create(&s, "b", None);
        let s = create(&s, "c", Some(Secondary));
        assert_eq!(roles(&s), [("a", Primary), ("b", Normal), ("c", Secondary)]);
        let s = create(&s, "d", Some(Primary));
        assert_eq!(
            roles(&s),
            [("a", Normal), ("b", Normal), ("c", Secondary), ("d", Primary)]
        );
        let dup = apply(
            &s,
            &RoleChange::Create {
                name: "a".into(),
                requested: None,
            },
        )
        .unwrap_err();
        assert_eq!(dup.kind, crate::ErrorKind::AlreadyExists);
        assert_eq!(dup.reason, Reason::PaymentMethodExists);
    }

    #[test]
    fn primary_secondary_swap_and_delete() {
        let s = create(&create(&create(&[], "a", None), "b", None), "c", Some(Secondary));
        let p = apply(&s, &RoleChange::MakePrimary("c".into())).unwrap();
        assert_eq!(roles(&p), [("a", Normal), ("b", Normal), ("c", Primary)]);
        let sec = apply(&s, &RoleChange::MakeSecondary("b".into())).unwrap();
        assert_eq!(roles(&sec), [("a", Primary), ("b", Secondary), ("c", Normal)]);
        // Making the primary secondary hands primary to the secondary.
        let demoted = apply(&s, &RoleChange::MakeSecondary("a".into())).unwrap();
        assert_eq!(roles(&demoted), [("a", Secondary), ("b", Normal), ("c", Primary)]);
        let swapped = apply(&s, &RoleChange::Swap("a".into())).unwrap();
        assert_eq!(roles(&swapped), [("a", Secondary), ("b", Normal), ("c", Primary)]);
        let neither = apply(&s, &RoleChange::Swap("b".into())).unwrap_err();
        assert_eq!(neither.reason, Reason::PaymentMethodNotPrimaryOrSecondary);
        let no_secondary = apply(&p, &RoleChange::Swap("c".into())).unwrap_err();
        assert_eq!(no_secondary.reason, Reason::NoSecondaryPaymentMethod);
        let deleted = apply(
            &s,
            &RoleChange::Delete {
                name: "a".into(),
                on_paid_plan: true,
            },
        )
        .unwrap();
        assert_eq!(roles(&deleted), [("b", Normal), ("c", Primary)]);
        assert_eq!(
            apply(&s, &RoleChange::MakePrimary("zz".into())).unwrap_err().kind,
            crate::ErrorKind::NotFound
        );
    }

    #[test]
    fn the_only_method_stays_primary_on_a_paid_plan() {
        let s = create(&[], "a", None);
        let e = apply(&s, &RoleChange::MakeSecondary("a".into())).unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::FailedPrecondition);
        assert_eq!(e.reason, Reason::OnlyPaymentMethod);
        let e = apply(
            &s,
            &RoleChange::Delete {
                name: "a".into(),
                on_paid_plan: true,
            },
        )
        .unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::FailedPrecondition);
        assert_eq!(e.reason, Reason::PaymentMethodRequired);
        assert!(
            apply(
                &s,
                &RoleChange::Delete {
                    name: "a".into(),
                    on_paid_plan: false
                }
            )
            .unwrap()
            .is_empty()
        );
        assert!(apply(&s, &RoleChange::Swap("a".into())).is_err());
    }

    fn change() -> impl Strategy<Value = RoleChange> {
        let name = prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(String::from);
        let role = proptest::option::of(prop_oneof![Just(Primary), Just(Secondary), Just(Normal)]);
        prop_oneof![
            (name.clone(), role).prop_map(|(name, requested)| RoleChange::Create { name, requested }),
            name.clone().prop_map(RoleChange::MakePrimary),
            name.clone().prop_map(RoleChange::MakeSecondary),
            name.clone().prop_map(RoleChange::Swap),
            (name, proptest::bool::ANY)
                .prop_map(|(name, on_paid_plan)| RoleChange::Delete { name, on_paid_plan }),
        ]
    }

    proptest! {
        /// Any sequence of calls keeps the invariants; refused calls change nothing.
        #[test]
        fn role_invariants_hold_for_any_sequence(changes in proptest::collection::vec(change(), 0..40)) {
            let mut slots: Vec<Slot> = Vec::new();
            for c in &changes {
                if let Ok(next) = apply(&slots, c) {
                    slots = next;
                }
                let primaries = slots.iter().filter(|s| s.role == Primary).count();
                let secondaries = slots.iter().filter(|s| s.role == Secondary).count();
                prop_assert!(secondaries <= 1, "{slots:?}");
                prop_assert_eq!(primaries, usize::from(!slots.is_empty()), "{:?} after {:?}", slots, c);
                let mut names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
                names.sort();
                names.dedup();
                prop_assert_eq!(names.len(), slots.len());
            }
        }
    }
}
