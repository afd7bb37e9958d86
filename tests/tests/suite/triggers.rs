//! The Cognito trigger handlers, fed Cognito's own event JSON, on both store backends; the
//! directory lookup they use against Cognito on moto.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use functions::triggers::{Trigger, TriggerContext, handle, settings_from};
use integration_tests::{Backend, both_backends, fresh_store, moto_endpoint};
use serde_json::{Value, json};
use shared::DomainResult;
use shared::auth::links;
use shared::auth::triggers::{CognitoDirectory, TriggerSettings, UserDirectory};
use shared::customers::{CustomerDraft, CustomerQuery};

fn event(name: &str, replacements: &[(&str, &str)]) -> Value {
    let path = format!("{}/../infra/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).expect("event JSON")
}

/// A directory with one native user, recording the links asked for.
#[derive(Default)]
struct FakeDirectory {
    native: Vec<(String, String)>,
    linked: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl UserDirectory for FakeDirectory {
    async fn native_user_by_email(&self, _pool: &str, email: &str) -> DomainResult<Option<String>> {
        Ok(self
            .native
            .iter()
            .find(|(e, _)| e == email)
            .map(|(_, u)| u.clone()))
    }
    async fn link_provider(
        &self,
        _pool: &str,
        native: &str,
        provider: &str,
        id: &str,
    ) -> DomainResult<()> {
        self.linked
            .lock()
            .unwrap()
            .push((native.into(), provider.into(), id.into()));
        Ok(())
    }
}

fn settings(auto_confirm: bool) -> TriggerSettings {
    TriggerSettings {
        actor_type: "customer".into(),
        auto_confirm,
        create_customers: true,
    }
}

async fn context(
    backend: Backend,
    directory: Arc<FakeDirectory>,
    auto_confirm: bool,
) -> Option<TriggerContext> {
    let store = fresh_store(backend).await?;
    Some(TriggerContext::new(
        store,
        directory,
        settings(auto_confirm),
    ))
}

/// Acme, whose buyers sign in through the `AcmeSaml` IdP, owns `acme.example`.
async fn acme_with_saml(ctx: &TriggerContext) -> shared::companies::Company {
    ctx.companies
        .create(&shared::companies::CompanyPatch {
            name: Some("Acme".into()),
            email_domains: Some(vec!["acme.example".into()]),
            saml_provider: Some(Some("AcmeSaml".into())),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn customer_count(ctx: &TriggerContext) -> usize {
    ctx.customers
        .list(&CustomerQuery {
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .count
}

/// A customer with an account for `email`, made by a code-confirmed sign-up of `sub`.
async fn confirmed_customer(ctx: &TriggerContext, sub: &str, email: &str) -> String {
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation.json",
            &[("SUB", sub), ("EMAIL", email)],
        ),
        ctx,
    )
    .await
    .unwrap();
    links::actor_id(&ctx.customers.store(), sub, "customer")
        .await
        .unwrap()
        .expect("a confirmed sign-up has its customer")
}

async fn post_confirmation_links_an_existing_account_only_after_the_code(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    let store = ctx.customers.store();
    let owner = confirmed_customer(&ctx, "sub-owner", "olga@example.com").await;

    // An auto-confirmed sign-up (no code typed: `email_verified` is false) with the owner's
    // email gets nothing of the owner's account, and no customer of its own.
    let answered = handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-auto-confirmed.json",
            &[("SUB", "sub-attacker"), ("EMAIL", "Olga@Example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(
        answered["request"]["userAttributes"]["email"],
        json!("Olga@Example.com")
    );
    assert_eq!(
        links::actor_id(&store, "sub-attacker", "customer")
            .await
            .unwrap(),
        None
    );
    assert_eq!(customer_count(&ctx).await, 1);

    // An auto-confirmed sign-up with a new email still gets its customer (Medusa's flow).
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-auto-confirmed.json",
            &[("SUB", "sub-new"), ("EMAIL", "nina@example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    let nina = links::link(&store, "sub-new", "customer")
        .await
        .unwrap()
        .expect("a new email gets a customer");
    assert!(nina.pending_claim);
    assert_ne!(nina.actor_id, owner);

    // A sign-up confirmed with the emailed code proves the email: it joins the account.
    assert_eq!(
        confirmed_customer(&ctx, "sub-second", "olga@example.com").await,
        owner
    );
    assert_eq!(customer_count(&ctx).await, 2);
}

async fn pre_token_links_federated_identities_only_on_a_proven_email(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    acme_with_saml(&ctx).await;
    let store = ctx.customers.store();
    let gina = confirmed_customer(&ctx, "sub-gina", "gina@gmail.com").await;
    let sam = confirmed_customer(&ctx, "sub-sam", "sam@acme.example").await;
    let actor = |answered: &Value| token_claims(answered)["actor_id"].clone();

    // Google without a true `email_verified` (false, or missing): unlinked, no customer.
    for verified in [Some("false"), None] {
        let mut unverified = event(
            "cognito-pre-token-v2-federated.json",
            &[("SUB", "sub-google-1"), ("EMAIL", "gina@gmail.com")],
        );
        let attributes = unverified["request"]["userAttributes"]
            .as_object_mut()
            .unwrap();
        match verified {
            Some(v) => attributes.insert("email_verified".into(), json!(v)),
            None => attributes.remove("email_verified"),
        };
        let answered = handle(Trigger::PreTokenGeneration, unverified, &ctx)
            .await
            .unwrap();
        assert_eq!(actor(&answered), json!(""), "{verified:?}");
    }
    assert_eq!(
        links::actor_id(&store, "sub-google-1", "customer")
            .await
            .unwrap(),
        None
    );

    // Google with a verified email joins the account.
    let verified = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2-federated.json",
            &[("SUB", "sub-google-2"), ("EMAIL", "gina@gmail.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(actor(&verified), json!(gina));

    // The company's SAML IdP asserting an email outside its domains: no link, even if it
    // claims the email verified.
    let mut outside = event(
        "cognito-pre-token-v2-saml.json",
        &[("SUB", "sub-saml-out"), ("EMAIL", "gina@gmail.com")],
    );
    outside["request"]["userAttributes"]["email_verified"] = json!("true");
    let outside = handle(Trigger::PreTokenGeneration, outside, &ctx)
        .await
        .unwrap();
    assert_eq!(actor(&outside), json!(""), "{outside}");
    assert_eq!(
        links::actor_id(&store, "sub-saml-out", "customer")
            .await
            .unwrap(),
        None
    );

    // In its own domain, the IdP's word is the proof.
    let inside = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2-saml.json",
            &[("SUB", "sub-saml-in"), ("EMAIL", "sam@acme.example")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(actor(&inside), json!(sam));
    assert_eq!(customer_count(&ctx).await, 2);
}

async fn pre_sign_up_confirms_and_links_by_verified_email(backend: Backend) {
    let directory = Arc::new(FakeDirectory {
        native: vec![
            ("ann@example.com".into(), "native-ann".into()),
            ("sam@acme.example".into(), "native-sam".into()),
        ],
        ..Default::default()
    });
    let Some(ctx) = context(backend, directory.clone(), true).await else {
        return;
    };
    acme_with_saml(&ctx).await;
    let answered = handle(
        Trigger::PreSignUp,
        event("cognito-pre-sign-up.json", &[("EMAIL", "new@example.com")]),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(answered["response"]["autoConfirmUser"], json!(true));
    assert_eq!(
        answered["response"]["autoVerifyEmail"],
        json!(false),
        "an auto-confirmed email is never verified"
    );
    assert_eq!(
        answered["userName"],
        json!("4f1c8d2a-0f6b-4c1e-9a57-0a6f2c1b7d10"),
        "the event is echoed"
    );
    // A client that sends `email_verified` itself (it may write it: the Google mapping needs
    // it writable) is refused: that would pass for proof.
    let mut self_verified = event("cognito-pre-sign-up.json", &[("EMAIL", "ann@example.com")]);
    self_verified["request"]["userAttributes"]["email_verified"] = json!("true");
    let refused = handle(Trigger::PreSignUp, self_verified, &ctx).await;
    assert!(refused.is_err(), "{refused:?}");

    // The company's SAML IdP vouches for its own domain only, whatever it says of verification.
    let cases = [
        ("Google", "true", "ann@example.com", "native-ann"),
        ("Google", "false", "ann@example.com", ""),
        ("Google", "true", "stranger@example.com", ""),
        ("AcmeSaml", "false", "ann@example.com", ""),
        ("AcmeSaml", "true", "ann@example.com", ""),
        ("OtherSaml", "true", "sam@acme.example", ""),
        ("AcmeSaml", "false", "sam@acme.example", "native-sam"),
    ];
    for (provider, verified, email, native) in cases {
        let links = !native.is_empty();
        let before = directory.linked.lock().unwrap().len();
        handle(
            Trigger::PreSignUp,
            event(
                "cognito-pre-sign-up-external.json",
                &[
                    ("PROVIDER", provider),
                    ("VERIFIED", verified),
                    ("EMAIL", email),
                    ("POOL_ID", "us-east-1_X"),
                ],
            ),
            &ctx,
        )
        .await
        .unwrap();
        let linked = directory.linked.lock().unwrap().clone();
        assert_eq!(
            linked.len() - before,
            usize::from(links),
            "{provider} {verified} {email}"
        );
        if links {
            assert_eq!(
                linked.last().unwrap(),
                &(
                    native.to_owned(),
                    provider.to_owned(),
                    "109876543210987654321".to_owned()
                )
            );
        }
    }
    // Without auto-confirm, native sign-ups wait for the emailed code.
    let Some(strict) = context(backend, directory, false).await else {
        return;
    };
    let answered = handle(
        Trigger::PreSignUp,
        event("cognito-pre-sign-up.json", &[("EMAIL", "x@example.com")]),
        &strict,
    )
    .await
    .unwrap();
    assert_eq!(answered["response"]["autoConfirmUser"], json!(false));
    let garbage = handle(Trigger::PreSignUp, json!({"hello": "world"}), &strict).await;
    assert!(garbage.is_err());
}

async fn post_confirmation_creates_the_customer_once_and_registration_claims_it(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    let sub = "6a1f0c1e-1111-4b2c-9d3e-abcdefabcdef";
    let confirmed = event(
        "cognito-post-confirmation.json",
        &[("SUB", sub), ("EMAIL", "Paula@Example.com")],
    );
    // Delivered twice (Cognito retries triggers): one customer.
    for _ in 0..2 {
        let answered = handle(Trigger::PostConfirmation, confirmed.clone(), &ctx)
            .await
            .unwrap();
        assert_eq!(
            answered, confirmed,
            "PostConfirmation answers with the event itself"
        );
    }
    let page = ctx
        .customers
        .list(&CustomerQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.count, 1);
    let customer = &page.customers[0];
    assert!(customer.has_account);
    assert_eq!(customer.first_name.as_deref(), Some("Paula"));
    let store = ctx.customers.store();
    assert_eq!(
        links::actor_id(&store, sub, "customer").await.unwrap(),
        Some(customer.id.clone())
    );

    // The token trigger now names the customer.
    let token = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2.json",
            &[("SUB", sub), ("EMAIL", "paula@example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    let claims = &token["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"];
    assert_eq!(
        claims,
        &json!({"actor_id": customer.id, "actor_type": "customer", "auth_identity_id": sub})
    );
    assert_eq!(
        token["response"]["claimsAndScopeOverrideDetails"]["idTokenGeneration"]["claimsToAddOrOverride"],
        *claims
    );

    // The storefront's `POST /store/customers` after sign-up claims that customer, once.
    let draft = CustomerDraft {
        email: Some("paula@example.com".into()),
        last_name: Some("Poste".into()),
        ..Default::default()
    };
    let own_email = Some("paula@example.com");
    let claimed = ctx
        .customers
        .register(sub, own_email, draft.clone())
        .await
        .unwrap();
    assert_eq!(
        (claimed.id.clone(), claimed.last_name.as_deref()),
        (customer.id.clone(), Some("Poste"))
    );
    let again = ctx
        .customers
        .register(sub, own_email, draft)
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        "Request already authenticated as a customer."
    );

    // A second identity with the same email (say, Google) links to the same customer.
    let other = "7b2e1d2f-2222-4c3d-8e4f-bcdefabcdefa";
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation.json",
            &[("SUB", other), ("EMAIL", "paula@example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(
        links::actor_id(&store, other, "customer").await.unwrap(),
        Some(customer.id.clone())
    );
    let page = ctx
        .customers
        .list(&CustomerQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.count, 1);
}

async fn pre_token_creates_federated_customers_and_leaves_native_ones_unlinked(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    // A native identity before its customer exists: an empty actor, as Medusa's register token.
    let native = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2.json",
            &[("SUB", "sub-native"), ("EMAIL", "n@example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(
        native["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
            ["actor_id"],
        json!("")
    );
    // A federated identity never passes PostConfirmation: its customer is made here, once.
    for _ in 0..2 {
        let federated = handle(
            Trigger::PreTokenGeneration,
            event(
                "cognito-pre-token-v2-federated.json",
                &[("SUB", "sub-google"), ("EMAIL", "gina@gmail.com")],
            ),
            &ctx,
        )
        .await
        .unwrap();
        let actor = federated["response"]["claimsAndScopeOverrideDetails"]["idTokenGeneration"]["claimsToAddOrOverride"]["actor_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(actor.starts_with("cus_"), "{federated}");
    }
    let page = ctx
        .customers
        .list(&CustomerQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.count, 1);
    assert_eq!(page.customers[0].first_name.as_deref(), Some("Gina"));
}

fn token_claims(event: &Value) -> &Value {
    &event["response"]["claimsAndScopeOverrideDetails"]["accessTokenGeneration"]["claimsToAddOrOverride"]
}

async fn pre_token_joins_customers_to_their_company(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    let patch = |name: &str, domains: &[&str], auto: bool, saml: Option<&str>| {
        shared::companies::CompanyPatch {
            name: Some(name.into()),
            email_domains: Some(domains.iter().map(|d| d.to_string()).collect()),
            auto_join_by_domain: Some(auto),
            saml_provider: Some(saml.map(str::to_owned)),
            ..Default::default()
        }
    };
    let acme = ctx
        .companies
        .create(&patch("Acme", &["acme.example"], false, Some("AcmeSaml")))
        .await
        .unwrap();
    let initech = ctx
        .companies
        .create(&patch("Initech", &["initech.example"], true, None))
        .await
        .unwrap();
    ctx.companies
        .create(&patch("Closed", &["closed.example"], false, None))
        .await
        .unwrap();

    // Through the company's SAML provider (trusted for its emails): joins as a buyer.
    let saml = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2-saml.json",
            &[("SUB", "sub-saml"), ("EMAIL", "sam@anything.example")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(token_claims(&saml)["company_id"], json!(acme.id), "{saml}");
    assert_eq!(token_claims(&saml)["company_role"], json!("buyer"));

    // A verified email in a domain whose company allows it joins; another domain does not.
    let google = |sub: &'static str, email: &'static str| {
        event(
            "cognito-pre-token-v2-federated.json",
            &[("SUB", sub), ("EMAIL", email)],
        )
    };
    let joined = handle(
        Trigger::PreTokenGeneration,
        google("sub-i", "ida@initech.example"),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(token_claims(&joined)["company_id"], json!(initech.id));
    let closed = handle(
        Trigger::PreTokenGeneration,
        google("sub-c", "cy@closed.example"),
        &ctx,
    )
    .await
    .unwrap();
    assert!(
        token_claims(&closed).get("company_id").is_none(),
        "{closed}"
    );

    // An unverified email never joins by domain.
    let mut unverified = google("sub-u", "uma@initech.example");
    unverified["request"]["userAttributes"]["email_verified"] = json!("false");
    let unverified = handle(Trigger::PreTokenGeneration, unverified, &ctx)
        .await
        .unwrap();
    assert!(token_claims(&unverified).get("company_id").is_none());

    // Later tokens carry the same company; the company counts its members once.
    let again = handle(
        Trigger::PreTokenGeneration,
        google("sub-i", "ida@initech.example"),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(token_claims(&again)["company_id"], json!(initech.id));
    assert_eq!(
        ctx.companies
            .retrieve(&initech.id)
            .await
            .unwrap()
            .member_count,
        1
    );
}

/// An account made by an identity that proved nothing (an auto-confirmed sign-up) holds its
/// email on that identity's word: the address's owner, proving it later with Google, must not
/// land in it, where the squatter would see and act for the owner.
async fn accounts_claimed_without_proof_are_never_joined_by_email(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    let store = ctx.customers.store();
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-auto-confirmed.json",
            &[("SUB", "sub-squatter"), ("EMAIL", "owner@gmail.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    let claimed = links::actor_id(&store, "sub-squatter", "customer")
        .await
        .unwrap()
        .expect("a new email still gets its customer");
    let owner = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2-federated.json",
            &[("SUB", "sub-owner"), ("EMAIL", "owner@gmail.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(token_claims(&owner)["actor_id"], json!(""), "{owner}");
    assert_eq!(
        links::actor_id(&store, "sub-owner", "customer")
            .await
            .unwrap(),
        None,
        "the owner was linked to {claimed}, the squatter's account"
    );
    assert_eq!(customer_count(&ctx).await, 1);
}

/// A password reset through Cognito's own pages (hosted UI, Amplify) never passes the API's
/// reset route: its PostConfirmation ends the identity's earlier tokens and sessions all the
/// same, and creates no customer.
async fn a_reset_through_cognito_ends_earlier_tokens(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), false).await else {
        return;
    };
    let store = ctx.customers.store();
    let before = shared::auth::revocation::mark(&store, "sub-reset")
        .await
        .unwrap();
    assert_eq!(before.generation, 0);
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-forgot-password.json",
            &[("SUB", "sub-reset"), ("EMAIL", "reset@example.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    let after = shared::auth::revocation::mark(&store, "sub-reset")
        .await
        .unwrap();
    assert!(after.generation > before.generation, "{after:?}");
    assert!(after.signed_out_at > 0);
    assert_eq!(customer_count(&ctx).await, 0);

    // The staff pool's trigger (actor `user`, no customers) does the same for staff users.
    let staff = TriggerContext::new(
        store.clone(),
        Arc::<FakeDirectory>::default(),
        TriggerSettings {
            actor_type: "user".into(),
            auto_confirm: false,
            create_customers: false,
        },
    );
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-forgot-password.json",
            &[("SUB", "sub-staff"), ("EMAIL", "ops@example.com")],
        ),
        &staff,
    )
    .await
    .unwrap();
    let staff_mark = shared::auth::revocation::mark(&store, "sub-staff")
        .await
        .unwrap();
    assert!(staff_mark.generation > 0, "{staff_mark:?}");
}

/// A federated identity that proved nothing gets no customer at all: one made on its word (an
/// unverified Google address, an IdP no company names) would hold the address against its
/// owner.
async fn unproven_federated_identities_get_no_customer(backend: Backend) {
    let Some(ctx) = context(backend, Arc::default(), false).await else {
        return;
    };
    acme_with_saml(&ctx).await;
    let mut google = event(
        "cognito-pre-token-v2-federated.json",
        &[("SUB", "sub-unverified"), ("EMAIL", "someone@gmail.com")],
    );
    google["request"]["userAttributes"]["email_verified"] = json!("false");
    let saml = event(
        "cognito-pre-token-v2-saml.json",
        &[("SUB", "sub-saml-out"), ("EMAIL", "someone.else@gmail.com")],
    )
    .to_string()
    .replace("AcmeSaml", "StraySaml");
    let saml: Value = serde_json::from_str(&saml).unwrap();
    for unproven in [google, saml] {
        let answered = handle(Trigger::PreTokenGeneration, unproven, &ctx)
            .await
            .unwrap();
        assert_eq!(token_claims(&answered)["actor_id"], json!(""), "{answered}");
    }
    assert_eq!(customer_count(&ctx).await, 0);
    // Proven, the same kind of identity gets its customer.
    let verified = handle(
        Trigger::PreTokenGeneration,
        event(
            "cognito-pre-token-v2-federated.json",
            &[("SUB", "sub-verified"), ("EMAIL", "someone@gmail.com")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    assert_ne!(token_claims(&verified)["actor_id"], json!(""));
    assert_eq!(customer_count(&ctx).await, 1);
}

/// A customer holding an address on an unproven identity's word is not that address's owner
/// to a company either: an in-domain add invites rather than adds it, and it sees no
/// invitation to the address.
async fn companies_do_not_take_unproven_addresses_at_their_word(backend: Backend) {
    use shared::companies::{CompanyPatch, MemberRef, NewMember};
    let Some(ctx) = context(backend, Arc::default(), true).await else {
        return;
    };
    let bigcorp = ctx
        .companies
        .create(&CompanyPatch {
            name: Some("BigCorp".into()),
            email_domains: Some(vec!["bigcorp.example".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let boss = confirmed_customer(&ctx, "sub-boss", "boss@bigcorp.example").await;
    ctx.companies
        .update_members(
            &bigcorp.id,
            &[NewMember {
                customer_id: boss.clone(),
                role: "admin".into(),
            }],
            &[],
        )
        .await
        .unwrap();
    handle(
        Trigger::PostConfirmation,
        event(
            "cognito-post-confirmation-auto-confirmed.json",
            &[("SUB", "sub-squat"), ("EMAIL", "ceo@bigcorp.example")],
        ),
        &ctx,
    )
    .await
    .unwrap();
    let squatter = links::actor_id(&ctx.customers.store(), "sub-squat", "customer")
        .await
        .unwrap()
        .expect("the auto-confirmed sign-up has its customer");
    ctx.companies
        .update_members_as(
            &boss,
            &[(
                MemberRef::Email("ceo@bigcorp.example".into()),
                "buyer".into(),
            )],
            &[],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        ctx.companies.membership_of(&squatter).await.unwrap(),
        None,
        "added on the squatter's word"
    );
    assert!(
        ctx.companies
            .invitations_for(&squatter)
            .await
            .unwrap()
            .is_empty(),
        "the squatter sees the owner's invitation"
    );
}

both_backends!(
    companies_do_not_take_unproven_addresses_at_their_word,
    unproven_federated_identities_get_no_customer,
    a_reset_through_cognito_ends_earlier_tokens,
    accounts_claimed_without_proof_are_never_joined_by_email,
    post_confirmation_links_an_existing_account_only_after_the_code,
    pre_token_links_federated_identities_only_on_a_proven_email,
    pre_token_joins_customers_to_their_company,
    pre_sign_up_confirms_and_links_by_verified_email,
    post_confirmation_creates_the_customer_once_and_registration_claims_it,
    pre_token_creates_federated_customers_and_leaves_native_ones_unlinked,
);

#[test]
fn trigger_settings_come_from_the_environment() {
    let get = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    let s = settings_from(get(&[("ACTOR_TYPE", "user"), ("AUTO_CONFIRM", "true")])).unwrap();
    assert_eq!(
        (s.actor_type.as_str(), s.auto_confirm, s.create_customers),
        ("user", true, true)
    );
    assert!(settings_from(get(&[("ACTOR_TYPE", "robot")])).is_err());
    assert!(settings_from(get(&[("AUTO_CONFIRM", "maybe")])).is_err());
}

#[tokio::test]
async fn directory_finds_native_users_by_email_on_moto() {
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let client = integration_tests::cognito_client(&endpoint).await;
    let (pool, app) = integration_tests::cognito_pool(&client, "directory").await;
    client
        .sign_up()
        .client_id(&app)
        .username("dora@example.com")
        .password("D0ra-Passw0rd!")
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email")
                .value("dora@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let directory = CognitoDirectory(client.clone());
    // Signed up, not verified: nothing proves the user owns the email, so nothing links to it.
    assert_eq!(
        directory
            .native_user_by_email(&pool, "dora@example.com")
            .await
            .unwrap(),
        None
    );
    client
        .admin_update_user_attributes()
        .user_pool_id(&pool)
        .username("dora@example.com")
        .user_attributes(
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder()
                .name("email_verified")
                .value("true")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let found = directory
        .native_user_by_email(&pool, "dora@example.com")
        .await
        .unwrap();
    assert!(found.is_some());
    assert_eq!(
        directory
            .native_user_by_email(&pool, "nobody@example.com")
            .await
            .unwrap(),
        None
    );
}
