//! B2B companies, their buyers, and permission grants, over HTTP on both backends.

use integration_tests::{Backend, Shop, TestServer, both_backends};
use serde_json::{Value, json};

async fn company(s: &TestServer, body: Value) -> Value {
    let (status, reply) = s.post("/admin/companies", body).await;
    assert_eq!(status, 200, "{reply}");
    reply["company"].clone()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn companies_and_their_buyers(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let acme = company(
        &s,
        json!({"name": "Acme Corp", "external_id": "ERP-1", "tax_id": "DE123",
               "email_domains": ["Acme.example", "@acme.co.uk"], "metadata": {"tier": "gold"}}),
    )
    .await;
    assert!(acme["id"].as_str().unwrap().starts_with("comp_"));
    assert_eq!(acme["email_domains"], json!(["acme.example", "acme.co.uk"]));
    assert_eq!(acme["member_count"], json!(0));
    let acme_id = id(&acme);

    // Uniqueness and validation: a clear 400, nothing written.
    let (status, dup) = s
        .post(
            "/admin/companies",
            json!({"name": "Other", "external_id": "ERP-1"}),
        )
        .await;
    assert_eq!(status, 400, "{dup}");
    assert_eq!(dup["type"], json!("invalid_data"));
    assert!(dup["message"].as_str().unwrap().contains("ERP-1"), "{dup}");
    let (status, clash) = s
        .post(
            "/admin/companies",
            json!({"name": "Other", "email_domains": ["acme.example"]}),
        )
        .await;
    assert_eq!(status, 400, "{clash}");
    assert!(clash["message"].as_str().unwrap().contains("acme.example"));
    let (status, bad) = s
        .post(
            "/admin/companies",
            json!({"name": "Bad", "email_domains": ["not a domain"]}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, no_name) = s.post("/admin/companies", json!({"tax_id": "x"})).await;
    assert_eq!(status, 400, "{no_name}");
    let (_, list) = s.get("/admin/companies").await;
    assert_eq!(
        list["count"],
        json!(1),
        "failed creates left nothing: {list}"
    );

    let globex = company(&s, json!({"name": "Globex"})).await;
    let globex_id = id(&globex);
    let (_, found) = s.get("/admin/companies?q=acme").await;
    assert_eq!(found["count"], json!(1));
    assert_eq!(found["companies"][0]["id"], json!(acme_id));
    let (_, by_external) = s.get("/admin/companies?external_id=ERP-1").await;
    assert_eq!(by_external["companies"][0]["id"], json!(acme_id));

    // Renaming frees the old external id for others.
    let (status, updated) = s
        .post(
            &format!("/admin/companies/{acme_id}"),
            json!({"external_id": "ERP-9"}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["company"]["external_id"], json!("ERP-9"));
    assert_eq!(updated["company"]["metadata"], json!({"tier": "gold"}));
    let (status, _) = s
        .post(
            &format!("/admin/companies/{globex_id}"),
            json!({"external_id": "ERP-1"}),
        )
        .await;
    assert_eq!(status, 200);
    // An update that takes another company's domain is refused and changes nothing.
    let (status, clash) = s
        .post(
            &format!("/admin/companies/{globex_id}"),
            json!({"name": "Globex 2", "email_domains": ["acme.co.uk"]}),
        )
        .await;
    assert_eq!(status, 400, "{clash}");
    assert!(
        clash["message"].as_str().unwrap().contains("acme.co.uk"),
        "{clash}"
    );
    let (_, unchanged) = s.get(&format!("/admin/companies/{globex_id}")).await;
    assert_eq!(unchanged["company"]["name"], json!("Globex"));
    assert_eq!(unchanged["company"]["email_domains"], json!([]));

    // Members.
    let ann = id(&s
        .create_customer(json!({"email": "ann@acme.example"}))
        .await);
    let bob = id(&s
        .create_customer(json!({"email": "bob@acme.example"}))
        .await);
    let gus = id(&s
        .create_customer(json!({"email": "gus@globex.example"}))
        .await);
    let (status, with_members) = s
        .post(
            &format!("/admin/companies/{acme_id}/customers"),
            json!({"add": [{"customer_id": ann, "role": "admin"}, {"customer_id": bob}]}),
        )
        .await;
    assert_eq!(status, 200, "{with_members}");
    assert_eq!(with_members["company"]["member_count"], json!(2));
    s.post(
        &format!("/admin/companies/{globex_id}/customers"),
        json!({"add": [{"customer_id": gus, "role": "buyer"}]}),
    )
    .await;

    // A customer is in one company at most; a failing batch writes nothing.
    let (status, taken) = s
        .post(
            &format!("/admin/companies/{globex_id}/customers"),
            json!({"add": [{"customer_id": ann, "role": "buyer"}]}),
        )
        .await;
    assert_eq!(status, 400, "{taken}");
    assert!(taken["message"].as_str().unwrap().contains(&acme_id));
    let fresh = id(&s.create_customer(json!({"email": "new@example.com"})).await);
    let (status, bad_role) = s
        .post(
            &format!("/admin/companies/{acme_id}/customers"),
            json!({"add": [{"customer_id": fresh, "role": "buyer"}, {"customer_id": gus, "role": "owner"}]}),
        )
        .await;
    assert_eq!(status, 400, "{bad_role}");
    let (status, unknown) = s
        .post(
            &format!("/admin/companies/{acme_id}/customers"),
            json!({"add": [{"customer_id": fresh}, {"customer_id": "cus_missing"}]}),
        )
        .await;
    assert_eq!(status, 404, "{unknown}");
    let (_, fresh_view) = s
        .get(&format!("/admin/customers/{fresh}?fields=*company"))
        .await;
    assert_eq!(
        fresh_view["customer"]["company"],
        Value::Null,
        "nothing half-written"
    );

    // The customer shows its company; the list filters by it.
    let (_, ann_view) = s
        .get(&format!("/admin/customers/{ann}?fields=*company"))
        .await;
    assert_eq!(
        ann_view["customer"]["company"],
        json!({"id": acme_id, "name": "Acme Corp", "role": "admin"})
    );
    let (_, members) = s
        .get(&format!("/admin/customers?company_id={acme_id}"))
        .await;
    assert_eq!(members["count"], json!(2), "{members}");
    let (status, unknown_param) = s.get("/admin/customers?company=x").await;
    assert_eq!(status, 400, "{unknown_param}");

    // Role change keeps the count; removal lowers it.
    let (_, changed) = s
        .post(
            &format!("/admin/companies/{acme_id}/customers"),
            json!({"add": [{"customer_id": bob, "role": "viewer"}]}),
        )
        .await;
    assert_eq!(changed["company"]["member_count"], json!(2));
    let (_, bob_view) = s
        .get(&format!("/admin/customers/{bob}?fields=*company"))
        .await;
    assert_eq!(bob_view["customer"]["company"]["role"], json!("viewer"));
    let (_, removed) = s
        .post(
            &format!("/admin/companies/{acme_id}/customers"),
            json!({"remove": [bob]}),
        )
        .await;
    assert_eq!(removed["company"]["member_count"], json!(1));

    // Deleting a customer leaves its company; deleting a company detaches everyone.
    s.delete(&format!("/admin/customers/{gus}")).await;
    let (_, globex_now) = s.get(&format!("/admin/companies/{globex_id}")).await;
    assert_eq!(globex_now["company"]["member_count"], json!(0));
    let (status, deleted) = s.delete(&format!("/admin/companies/{acme_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": acme_id, "object": "company", "deleted": true})
    );
    let (status, _) = s.get(&format!("/admin/companies/{acme_id}")).await;
    assert_eq!(status, 404);
    let (_, ann_after) = s
        .get(&format!("/admin/customers/{ann}?fields=*company"))
        .await;
    assert_eq!(ann_after["customer"]["company"], Value::Null);
    // Its domains and external id are free again.
    company(
        &s,
        json!({"name": "Acme 2", "external_id": "ERP-9", "email_domains": ["acme.example"]}),
    )
    .await;
}

async fn company_admins_manage_buyers_from_the_storefront(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (admin_token, admin_id) = shop.sign_up("boss@acme.example", "Boss").await;
    let (buyer_token, buyer_id) = shop.sign_up("buyer@acme.example", "Buyer").await;
    let (_, newbie_id) = shop.sign_up("newbie@acme.example", "Newbie").await;
    let (outsider_token, outsider_id) = shop.sign_up("gus@globex.example", "Gus").await;
    let acme_id = id(&company(
        &s,
        json!({"name": "Acme", "email_domains": ["acme.example"]}),
    )
    .await);
    let globex_id = id(&company(&s, json!({"name": "Globex"})).await);
    s.post(
        &format!("/admin/companies/{acme_id}/customers"),
        json!({"add": [{"customer_id": admin_id, "role": "admin"}, {"customer_id": buyer_id, "role": "buyer"}]}),
    )
    .await;
    s.post(
        &format!("/admin/companies/{globex_id}/customers"),
        json!({"add": [{"customer_id": outsider_id, "role": "admin"}]}),
    )
    .await;

    // A new token carries the company.
    let refreshed = s
        .call_as(&buyer_token, "POST", "/auth/token/refresh", None)
        .await;
    let claims = integration_tests::claims(refreshed.body["token"].as_str().unwrap());
    assert_eq!(claims["company_id"], json!(acme_id), "{claims}");
    assert_eq!(claims["company_role"], json!("buyer"));

    let mine = shop
        .call("GET", "/store/customers/me/company", None, &buyer_token)
        .await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert_eq!(mine.body["company"]["id"], json!(acme_id));
    assert_eq!(mine.body["company"]["role"], json!("buyer"));
    assert!(
        mine.body["company"].get("saml_provider").is_none(),
        "sign-in settings stay with staff"
    );

    // An admin cannot demote an admin, itself included: that is how one would then be removed.
    let demote = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"customer_id": admin_id, "role": "buyer"}]})),
            &admin_token,
        )
        .await;
    assert_eq!(demote.status, 403, "{}", demote.body);
    let (_, still) = s
        .get(&format!("/admin/customers/{admin_id}?fields=*company"))
        .await;
    assert_eq!(
        still["customer"]["company"]["role"],
        json!("admin"),
        "{still}"
    );

    // Only the company admin lists and manages members.
    let denied = shop
        .call(
            "GET",
            "/store/customers/me/company/members",
            None,
            &buyer_token,
        )
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert_eq!(denied.body["type"], json!("not_allowed"));
    let listed = shop
        .call(
            "GET",
            "/store/customers/me/company/members",
            None,
            &admin_token,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["count"], json!(2));
    assert!(
        listed.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == json!("buyer@acme.example"))
    );

    let added = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"email": "NEWBIE@acme.example", "role": "viewer"}]})),
            &admin_token,
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.body["count"], json!(3));
    let (_, newbie) = s
        .get(&format!("/admin/customers/{newbie_id}?fields=*company"))
        .await;
    assert_eq!(newbie["customer"]["company"]["role"], json!("viewer"));

    // Admins are made and removed by staff only; other companies' customers are out of reach.
    let promote = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"customer_id": buyer_id, "role": "admin"}]})),
            &admin_token,
        )
        .await;
    assert_eq!(promote.status, 403, "{}", promote.body);
    let poach = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"remove": [outsider_id]})),
            &admin_token,
        )
        .await;
    assert_eq!(poach.status, 404, "{}", poach.body);
    // By id, only members (role changes): anyone else is reached by an invitation.
    let steal = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"customer_id": outsider_id}]})),
            &admin_token,
        )
        .await;
    assert_eq!(steal.status, 404, "{}", steal.body);
    let other_admin = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"remove": [buyer_id]})),
            &outsider_token,
        )
        .await;
    assert_eq!(other_admin.status, 404, "{}", other_admin.body);
    let unknown = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"email": "nobody@acme.example"}]})),
            &admin_token,
        )
        .await;
    // An address of the company's own domain without an account gets an invitation.
    assert_eq!(unknown.status, 200, "{}", unknown.body);
    assert_eq!(unknown.body["invited"], json!(1));
    assert_eq!(unknown.body["count"], json!(3));
    let nobody = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"add": [{"role": "buyer"}]})),
            &admin_token,
        )
        .await;
    assert_eq!(nobody.status, 400, "{}", nobody.body);

    let removed = shop
        .call(
            "POST",
            "/store/customers/me/company/members",
            Some(json!({"remove": [buyer_id]})),
            &admin_token,
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert_eq!(removed.body["count"], json!(2));
    let gone = shop
        .call("GET", "/store/customers/me/company", None, &buyer_token)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
}

const MEMBERS: &str = "/store/customers/me/company/members";
const INVITATIONS: &str = "/store/customers/me/company-invitations";

/// The customer's company as staff see it (`null` outside any company).
async fn company_of(s: &TestServer, customer_id: &str) -> Value {
    let (status, body) = s
        .get(&format!("/admin/customers/{customer_id}?fields=*company"))
        .await;
    assert_eq!(status, 200, "{body}");
    body["customer"]["company"].clone()
}

async fn member_count(s: &TestServer, company_id: &str) -> Value {
    let (_, body) = s.get(&format!("/admin/companies/{company_id}")).await;
    body["company"]["member_count"].clone()
}

async fn invitations_of(shop: &Shop<'_>, token: &str) -> Value {
    let listed = shop.call("GET", INVITATIONS, None, token).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body
}

/// A members answer without the admin's own list of pending invitations (which names the
/// addresses the admin typed, and nothing else).
fn without_invitations(mut reply: Value) -> Value {
    reply.as_object_mut().unwrap().remove("invitations");
    reply
}

async fn company_admins_reach_outsiders_only_by_invitation(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (boss_token, boss_id) = shop.sign_up("boss@acme.example", "Boss").await;
    let (buyer_token, buyer_id) = shop.sign_up("buyer@acme.example", "Buyer").await;
    let (_, insider_id) = shop.sign_up("ina@acme.example", "Ina").await;
    let (vic_token, vic_id) = shop.sign_up("vic@victim.example", "Victoria").await;
    let (dee_token, dee_id) = shop.sign_up("dee@victim.example", "Dee").await;
    let (gus_token, gus_id) = shop.sign_up("gus@globex.example", "Gus").await;
    let acme_id = id(&company(
        &s,
        json!({"name": "Acme", "email_domains": ["acme.example"]}),
    )
    .await);
    let globex_id = id(&company(&s, json!({"name": "Globex"})).await);
    s.post(
        &format!("/admin/companies/{acme_id}/customers"),
        json!({"add": [{"customer_id": boss_id, "role": "admin"}, {"customer_id": buyer_id}]}),
    )
    .await;
    s.post(
        &format!("/admin/companies/{globex_id}/customers"),
        json!({"add": [{"customer_id": gus_id, "role": "admin"}]}),
    )
    .await;
    let staff_token = s.token.clone();

    // An address outside the company's domains gets an invitation, not a membership, and the
    // answer is the same whether it has an account or not: no name, no "no such customer".
    let mut answers = Vec::new();
    for email in ["VIC@victim.example", "ghost@victim.example"] {
        let invited = shop
            .call(
                "POST",
                MEMBERS,
                Some(json!({"add": [{"email": email, "role": "viewer"}]})),
                &boss_token,
            )
            .await;
        assert_eq!(invited.status, 200, "{email}: {}", invited.body);
        assert_eq!(invited.body["invited"], json!(1));
        assert_eq!(invited.body["count"], json!(2), "nobody added");
        let text = invited.body.to_string();
        assert!(
            !text.contains("Victoria") && !text.contains(&vic_id),
            "{text}"
        );
        answers.push(without_invitations(invited.body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(company_of(&s, &vic_id).await, Value::Null);
    assert_eq!(member_count(&s, &acme_id).await, json!(2));
    let pending = shop.call("GET", MEMBERS, None, &boss_token).await;
    let emails: Vec<&str> = pending.body["invitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ghost@victim.example", "vic@victim.example"]);

    // Only the company admin invites.
    let by_buyer = shop
        .call(
            "POST",
            MEMBERS,
            Some(json!({"add": [{"email": "dee@victim.example"}]})),
            &buyer_token,
        )
        .await;
    assert_eq!(by_buyer.status, 403, "{}", by_buyer.body);
    assert_eq!(invitations_of(&shop, &dee_token).await["count"], json!(0));

    // The invitee sees its invitation.
    let vic_invitations = invitations_of(&shop, &vic_token).await;
    assert_eq!(vic_invitations["count"], json!(1), "{vic_invitations}");
    let invitation = &vic_invitations["company_invitations"][0];
    assert_eq!(invitation["company_id"], json!(acme_id));
    assert_eq!(
        invitation["company"],
        json!({"id": acme_id, "name": "Acme"})
    );
    assert_eq!(invitation["email"], json!("vic@victim.example"));
    assert_eq!(invitation["role"], json!("viewer"));
    let (created, expires) = (
        invitation["created_at"].as_str().unwrap(),
        invitation["expires_at"].as_str().unwrap(),
    );
    assert!(expires > created, "{invitation}");
    let vic_invitation = id(invitation);
    assert!(vic_invitation.starts_with("cinv_"), "{vic_invitation}");
    let accept = format!("{INVITATIONS}/{vic_invitation}/accept");
    let decline = format!("{INVITATIONS}/{vic_invitation}/decline");

    // Nobody else sees, accepts or declines it; without a customer token it is a 401.
    assert_eq!(invitations_of(&shop, &dee_token).await["count"], json!(0));
    for path in [&accept, &decline] {
        let other = shop.call("POST", path, None, &dee_token).await;
        assert_eq!(other.status, 404, "{}", other.body);
        for token in ["", staff_token.as_str()] {
            let denied = shop.call("POST", path, None, token).await;
            assert_eq!(denied.status, 401, "{}", denied.body);
        }
    }
    for token in ["", staff_token.as_str()] {
        let denied = shop.call("GET", INVITATIONS, None, token).await;
        assert_eq!(denied.status, 401, "{}", denied.body);
    }
    assert_eq!(company_of(&s, &dee_id).await, Value::Null);
    assert_eq!(company_of(&s, &vic_id).await, Value::Null);
    assert_eq!(invitations_of(&shop, &vic_token).await["count"], json!(1));

    // Accepting makes the invitee a member with the invited role, once.
    let joined = shop.call("POST", &accept, None, &vic_token).await;
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body["company"]["id"], json!(acme_id));
    assert_eq!(joined.body["company"]["role"], json!("viewer"));
    assert_eq!(company_of(&s, &vic_id).await["role"], json!("viewer"));
    assert_eq!(member_count(&s, &acme_id).await, json!(3));
    assert_eq!(invitations_of(&shop, &vic_token).await["count"], json!(0));
    let again = shop.call("POST", &accept, None, &vic_token).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert_eq!(member_count(&s, &acme_id).await, json!(3));

    // Declining removes the invitation and nothing else.
    shop.call(
        "POST",
        MEMBERS,
        Some(json!({"add": [{"email": "dee@victim.example"}]})),
        &boss_token,
    )
    .await;
    let dee_invitation = id(&invitations_of(&shop, &dee_token).await["company_invitations"][0]);
    let declined = shop
        .call(
            "POST",
            &format!("{INVITATIONS}/{dee_invitation}/decline"),
            None,
            &dee_token,
        )
        .await;
    assert_eq!(declined.status, 200, "{}", declined.body);
    assert_eq!(
        declined.body,
        json!({"id": dee_invitation, "object": "company_invitation", "deleted": true})
    );
    assert_eq!(invitations_of(&shop, &dee_token).await["count"], json!(0));
    assert_eq!(company_of(&s, &dee_id).await, Value::Null);
    assert_eq!(member_count(&s, &acme_id).await, json!(3));

    // A customer of another company must leave it before joining: nothing changes.
    shop.call(
        "POST",
        MEMBERS,
        Some(json!({"add": [{"email": "gus@globex.example"}]})),
        &boss_token,
    )
    .await;
    let gus_invitation = id(&invitations_of(&shop, &gus_token).await["company_invitations"][0]);
    let refused = shop
        .call(
            "POST",
            &format!("{INVITATIONS}/{gus_invitation}/accept"),
            None,
            &gus_token,
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["type"], json!("not_allowed"));
    assert_eq!(company_of(&s, &gus_id).await["id"], json!(globex_id));
    assert_eq!(member_count(&s, &acme_id).await, json!(3));

    // An invitation waits for whoever registers with its address, until the admin revokes it.
    let (ghost_token, ghost_id) = shop.sign_up("ghost@victim.example", "Ghost").await;
    let ghost_invitations = invitations_of(&shop, &ghost_token).await;
    assert_eq!(ghost_invitations["count"], json!(1), "{ghost_invitations}");
    let ghost_invitation = id(&ghost_invitations["company_invitations"][0]);
    let revoked = shop
        .call(
            "POST",
            MEMBERS,
            Some(json!({"revoke_invitations": ["Ghost@victim.example"]})),
            &boss_token,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(invitations_of(&shop, &ghost_token).await["count"], json!(0));
    let late = shop
        .call(
            "POST",
            &format!("{INVITATIONS}/{ghost_invitation}/accept"),
            None,
            &ghost_token,
        )
        .await;
    assert_eq!(late.status, 404, "{}", late.body);
    assert_eq!(company_of(&s, &ghost_id).await, Value::Null);

    // An address in the company's own domain is added at once.
    let direct = shop
        .call(
            "POST",
            MEMBERS,
            Some(json!({"add": [{"email": "ina@acme.example"}]})),
            &boss_token,
        )
        .await;
    assert_eq!(direct.status, 200, "{}", direct.body);
    assert_eq!(direct.body["invited"], json!(0));
    assert_eq!(company_of(&s, &insider_id).await["role"], json!("buyer"));
    assert_eq!(member_count(&s, &acme_id).await, json!(4));

    // A member leaves; the admin cannot pull it back by id.
    for token in ["", staff_token.as_str()] {
        let denied = shop
            .call("DELETE", "/store/customers/me/company", None, token)
            .await;
        assert_eq!(denied.status, 401, "{}", denied.body);
    }
    assert_eq!(member_count(&s, &acme_id).await, json!(4));
    let left = shop
        .call("DELETE", "/store/customers/me/company", None, &vic_token)
        .await;
    assert_eq!(left.status, 200, "{}", left.body);
    assert_eq!(
        left.body,
        json!({"id": acme_id, "object": "company_membership", "deleted": true})
    );
    assert_eq!(company_of(&s, &vic_id).await, Value::Null);
    assert_eq!(member_count(&s, &acme_id).await, json!(3));
    let gone = shop
        .call("DELETE", "/store/customers/me/company", None, &vic_token)
        .await;
    assert_eq!(gone.status, 404, "{}", gone.body);
    let pulled = shop
        .call(
            "POST",
            MEMBERS,
            Some(json!({"add": [{"customer_id": vic_id}]})),
            &boss_token,
        )
        .await;
    assert_eq!(pulled.status, 404, "{}", pulled.body);
    assert_eq!(company_of(&s, &vic_id).await, Value::Null);

    // The last admin cannot leave; once staff appoint another, it can.
    let stuck = shop
        .call("DELETE", "/store/customers/me/company", None, &boss_token)
        .await;
    assert_eq!(stuck.status, 400, "{}", stuck.body);
    assert_eq!(stuck.body["type"], json!("not_allowed"));
    assert_eq!(company_of(&s, &boss_id).await["role"], json!("admin"));
    assert_eq!(member_count(&s, &acme_id).await, json!(3));
    s.post(
        &format!("/admin/companies/{acme_id}/customers"),
        json!({"add": [{"customer_id": buyer_id, "role": "admin"}]}),
    )
    .await;
    let boss_left = shop
        .call("DELETE", "/store/customers/me/company", None, &boss_token)
        .await;
    assert_eq!(boss_left.status, 200, "{}", boss_left.body);
    assert_eq!(company_of(&s, &boss_id).await, Value::Null);
    assert_eq!(member_count(&s, &acme_id).await, json!(2));
    let last = shop
        .call("DELETE", "/store/customers/me/company", None, &buyer_token)
        .await;
    assert_eq!(last.status, 400, "{}", last.body);
    assert_eq!(company_of(&s, &buyer_id).await["role"], json!("admin"));

    // Two accepts at once: one membership, counted once.
    let (twin_token, twin_id) = shop.sign_up("twin@victim.example", "Twin").await;
    shop.call(
        "POST",
        MEMBERS,
        Some(json!({"add": [{"email": "twin@victim.example"}]})),
        &buyer_token,
    )
    .await;
    let twin_invitation = id(&invitations_of(&shop, &twin_token).await["company_invitations"][0]);
    let accept = format!("{INVITATIONS}/{twin_invitation}/accept");
    let (first, second) = tokio::join!(
        shop.call("POST", &accept, None, &twin_token),
        shop.call("POST", &accept, None, &twin_token),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert!(
        statuses == [200, 200] || statuses == [200, 404],
        "{statuses:?}: {} {}",
        first.body,
        second.body
    );
    assert_eq!(company_of(&s, &twin_id).await["role"], json!("buyer"));
    assert_eq!(member_count(&s, &acme_id).await, json!(3));
}

fn check(action: &str, kind: &str, id: &str) -> Value {
    json!({"action": action, "resource": {"type": kind, "id": id}})
}

async fn grant(s: &TestServer, principal: Value, action: &str, kind: &str, rid: &str) -> String {
    let (status, body) = s
        .post(
            "/admin/permission-grants",
            json!({"principal": principal, "action": action, "resource": {"type": kind, "id": rid}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    id(&body["permission_grant"])
}

async fn allowed(s: &TestServer, customer: &str, checks: Vec<Value>) -> Vec<(bool, Vec<String>)> {
    let (status, body) = s
        .post(
            "/admin/permissions/check",
            json!({"customer_id": customer, "checks": checks}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["allowed"].as_bool().unwrap(),
                r["granted_by"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|g| g.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

async fn grants_through_groups_companies_and_roles(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let shop = Shop::new(&s).await;
    let (token, cus) = shop.sign_up("buyer@acme.example", "Buyer").await;
    let other = id(&s
        .create_customer(json!({"email": "other@example.com"}))
        .await);
    let (_, g) = s
        .post("/admin/customer-groups", json!({"name": "Wholesale"}))
        .await;
    let group = id(&g["customer_group"]);
    let acme = id(&company(&s, json!({"name": "Acme"})).await);
    s.post(
        &format!("/admin/customer-groups/{group}/customers"),
        json!({"add": [cus]}),
    )
    .await;
    s.post(
        &format!("/admin/companies/{acme}/customers"),
        json!({"add": [{"customer_id": cus, "role": "buyer"}]}),
    )
    .await;

    // Deny by default.
    let nothing = allowed(&s, &cus, vec![check("view", "product", "prod_1")]).await;
    assert_eq!(nothing, vec![(false, vec![])]);

    let own = grant(
        &s,
        json!({"type": "customer", "id": cus}),
        "view",
        "product",
        "prod_1",
    )
    .await;
    let by_group = grant(
        &s,
        json!({"type": "customer_group", "id": group}),
        "view",
        "product",
        "*",
    )
    .await;
    let by_company = grant(
        &s,
        json!({"type": "company", "id": acme}),
        "purchase",
        "price_list",
        "pl_acme",
    )
    .await;
    let by_role = grant(
        &s,
        json!({"type": "company_role", "id": acme, "role": "buyer"}),
        "purchase",
        "product",
        "prod_2",
    )
    .await;
    let admins_only = grant(
        &s,
        json!({"type": "company_role", "id": acme, "role": "admin"}),
        "approve",
        "order",
        "*",
    )
    .await;
    // Granting the same thing twice gives the same grant.
    let again = grant(
        &s,
        json!({"type": "customer", "id": cus}),
        "view",
        "product",
        "prod_1",
    )
    .await;
    assert_eq!(again, own);

    let checks = vec![
        check("view", "product", "prod_1"),
        check("view", "product", "prod_9"),
        check("purchase", "price_list", "pl_acme"),
        check("purchase", "product", "prod_2"),
        check("approve", "order", "order_1"),
        check("purchase", "product", "prod_1"),
    ];
    let results = allowed(&s, &cus, checks.clone()).await;
    let mut both = vec![own.clone(), by_group.clone()];
    both.sort();
    assert_eq!(
        results,
        vec![
            (true, both),
            (true, vec![by_group.clone()]),
            (true, vec![by_company.clone()]),
            (true, vec![by_role.clone()]),
            (false, vec![]),
            (false, vec![]),
        ]
    );
    assert!(admins_only.starts_with("pgr_"));
    // Another customer holds none of these.
    let theirs = allowed(&s, &other, checks.clone()).await;
    assert!(theirs.iter().all(|(a, _)| !a), "{theirs:?}");

    // The storefront asks for the signed-in customer, in the order asked.
    let store = shop
        .call(
            "POST",
            "/store/permissions/check",
            Some(json!({"checks": checks})),
            &token,
        )
        .await;
    assert_eq!(store.status, 200, "{}", store.body);
    assert_eq!(
        store.body["results"][2]["resource"],
        json!({"type": "price_list", "id": "pl_acme"})
    );
    assert_eq!(store.body["results"][2]["allowed"], json!(true));
    assert_eq!(store.body["results"][4]["allowed"], json!(false));

    // Effective grants with their source.
    let (_, effective) = s.get(&format!("/admin/customers/{cus}/permissions")).await;
    let sources: Vec<(String, String)> = effective["permission_grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["id"].as_str().unwrap().to_owned(),
                g["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (grant_id, source) in [
        (&own, "own"),
        (&by_group, "group"),
        (&by_company, "company"),
        (&by_role, "role"),
    ] {
        assert!(
            sources.contains(&(grant_id.clone(), source.to_owned())),
            "{effective}"
        );
    }
    assert!(
        !sources.iter().any(|(g, _)| g == &admins_only),
        "a role it does not hold"
    );

    // Listing by principal and by resource.
    let (_, of_group) = s
        .get(&format!(
            "/admin/permission-grants?principal_type=customer_group&principal_id={group}"
        ))
        .await;
    assert_eq!(of_group["count"], json!(1));
    let (_, on_product) = s
        .get("/admin/permission-grants?resource_type=product&resource_id=prod_1")
        .await;
    assert_eq!(on_product["permission_grants"][0]["id"], json!(own));

    // Leaving the group and the company takes their grants away at once.
    s.post(
        &format!("/admin/customer-groups/{group}/customers"),
        json!({"remove": [cus]}),
    )
    .await;
    s.post(
        &format!("/admin/companies/{acme}/customers"),
        json!({"remove": [cus]}),
    )
    .await;
    let after = allowed(&s, &cus, checks.clone()).await;
    assert_eq!(after[0], (true, vec![own.clone()]));
    assert!(after[1..].iter().all(|(a, _)| !a), "{after:?}");

    // Revocation.
    let (status, revoked) = s.delete(&format!("/admin/permission-grants/{own}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        revoked,
        json!({"id": own, "object": "permission_grant", "deleted": true})
    );
    assert_eq!(
        allowed(&s, &cus, vec![check("view", "product", "prod_1")]).await,
        vec![(false, vec![])]
    );
    let (status, _) = s.delete(&format!("/admin/permission-grants/{own}")).await;
    assert_eq!(status, 404);

    // Deleting a company or group revokes what was granted to it.
    s.delete(&format!("/admin/companies/{acme}")).await;
    let (_, company_grants) = s
        .get(&format!(
            "/admin/permission-grants?principal_type=company&principal_id={acme}"
        ))
        .await;
    assert_eq!(company_grants["count"], json!(0));
    let (_, role_grants) = s
        .get("/admin/permission-grants?principal_type=company_role")
        .await;
    assert_eq!(role_grants["count"], json!(0), "{role_grants}");
    s.delete(&format!("/admin/customer-groups/{group}")).await;
    let (_, all) = s.get("/admin/permission-grants").await;
    assert_eq!(all["count"], json!(0), "{all}");
}

async fn grants_expire_and_bad_input_is_refused(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let cus = id(&s.create_customer(json!({"email": "x@example.com"})).await);
    let (status, expired) = s
        .post(
            "/admin/permission-grants",
            json!({"principal": {"type": "customer", "id": cus}, "action": "view",
                   "resource": {"type": "product", "id": "p1"}, "expires_at": "2020-01-01"}),
        )
        .await;
    assert_eq!(status, 200, "{expired}");
    assert_eq!(
        expired["permission_grant"]["expires_at"],
        json!("2020-01-01T00:00:00.000Z")
    );
    let (status, future) = s
        .post(
            "/admin/permission-grants",
            json!({"principal": {"type": "customer", "id": cus}, "action": "view",
                   "resource": {"type": "product", "id": "p2"}, "expires_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{future}");
    let results = allowed(
        &s,
        &cus,
        vec![
            check("view", "product", "p1"),
            check("view", "product", "p2"),
        ],
    )
    .await;
    assert_eq!(
        results[0],
        (false, vec![]),
        "an expired grant grants nothing"
    );
    assert!(results[1].0);
    // Re-granting with a new expiry revives the same grant.
    let (_, renewed) = s
        .post(
            "/admin/permission-grants",
            json!({"principal": {"type": "customer", "id": cus}, "action": "view",
                   "resource": {"type": "product", "id": "p1"}, "expires_at": null}),
        )
        .await;
    assert_eq!(
        renewed["permission_grant"]["id"],
        expired["permission_grant"]["id"]
    );
    assert!(allowed(&s, &cus, vec![check("view", "product", "p1")]).await[0].0);
    let (_, effective) = s.get(&format!("/admin/customers/{cus}/permissions")).await;
    assert_eq!(effective["count"], json!(2));

    let bad = [
        json!({"principal": {"type": "robot", "id": cus}, "action": "view", "resource": {"type": "product", "id": "p"}}),
        json!({"principal": {"type": "company_role", "id": "comp_x"}, "action": "view", "resource": {"type": "product", "id": "p"}}),
        json!({"principal": {"type": "customer", "id": cus}, "action": "view it", "resource": {"type": "product", "id": "p"}}),
        json!({"principal": {"type": "customer", "id": cus}, "action": "view", "resource": {"type": "product"}}),
        json!({"principal": {"type": "customer", "id": cus}, "action": "view", "resource": {"type": "product", "id": "p"}, "expires_at": "soon"}),
        json!({"principal": {"type": "customer", "id": cus}, "action": "view", "resource": {"type": "product", "id": "p"}, "extra": 1}),
    ];
    for body in bad {
        let (status, reply) = s.post("/admin/permission-grants", body.clone()).await;
        assert_eq!(status, 400, "{body} → {reply}");
        assert_eq!(reply["type"], json!("invalid_data"), "{reply}");
    }
    let (status, missing) = s
        .post(
            "/admin/permission-grants",
            json!({"principal": {"type": "customer_group", "id": "cusgroup_nope"}, "action": "view",
                   "resource": {"type": "product", "id": "p"}}),
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    let (status, no_customer) = s
        .post(
            "/admin/permissions/check",
            json!({"customer_id": "cus_nope", "checks": [check("view", "product", "p")]}),
        )
        .await;
    assert_eq!(status, 404, "{no_customer}");
    let (status, bad_check) = s
        .post(
            "/admin/permissions/check",
            json!({"customer_id": cus, "checks": [{"action": "view"}]}),
        )
        .await;
    assert_eq!(status, 400, "{bad_check}");
    let (_, all) = s.get("/admin/permission-grants").await;
    assert_eq!(all["count"], json!(2), "refused grants wrote nothing");
}

both_backends!(
    companies_and_their_buyers,
    company_admins_manage_buyers_from_the_storefront,
    company_admins_reach_outsiders_only_by_invitation,
    grants_through_groups_companies_and_roles,
    grants_expire_and_bad_input_is_refused,
);
