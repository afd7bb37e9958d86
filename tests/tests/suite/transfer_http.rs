//! Bulk import and export over HTTP against the local server (both store backends): Shopify's
//! format with its quirks, bad rows and the error report, idempotent re-imports, export →
//! import round trips, and export filters.

use integration_tests::{Backend, TestServer, both_backends};
use serde_json::{Value, json};

async fn upload(s: &TestServer, csv: &str) -> Value {
    let response = s
        .client
        .post(format!("{}/admin/customers/imports", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = response.json().await.expect("json");
    finished(s, "imports", body["import"]["id"].as_str().unwrap()).await
}

/// Polls a job until it ends.
async fn finished(s: &TestServer, kind: &str, id: &str) -> Value {
    let key = &kind[..kind.len() - 1];
    for _ in 0..1200 {
        let (status, body) = s.get(&format!("/admin/customers/{kind}/{id}")).await;
        assert_eq!(status, 200, "{body}");
        let job = body[key].clone();
        if ["succeeded", "partially_failed", "failed"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{kind} {id} did not finish");
}

async fn download(s: &TestServer, path: &str) -> String {
    let response = s
        .client
        .get(format!("{}{path}", s.base))
        .bearer_auth(&s.token)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 200, "{path}");
    response.text().await.expect("text")
}

const SHOPIFY: &str = "\u{feff}Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,Default Address Address1,Default Address Address2,Default Address City,Default Address Province Code,Default Address Country Code,Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags\r\n\
'7012345678901,Ada,Lovelace,Ada@Example.com,yes,\"Analytical, Engines Ltd\",12 St James's Sq,,London,LND,GB,'02134,'+44 20 7946 0000,'+44 20 7946 0001,no,120.50,3,\"Likes \"\"math\"\",\r\nwrites notes\",no,\"VIP, Newsletter\"\r\n\
'7012345678902,Grace,Hopper,grace@example.com,no,,,,,,,,,,no,0.00,0,,yes,Newsletter\r\n\
'7012345678903,Mallory,Formula,mallory@example.com,no,,,,,,,,,=HYPERLINK(\"x\"),no,0,0,,no,\r\n";

const SHOPIFY_OLD: &str = "First Name,Last Name,Email,Company,Address1,Address2,City,Province,Province Code,Country,Country Code,Zip,Phone,Accepts Marketing,Total Spent,Total Orders,Tags,Note,Tax Exempt\n\
Linus,Torvalds,linus@example.com,Kernel Org,1 Penguin Way,,Portland,Oregon,OR,United States,US,'97201,'5035550100,yes,10,1,Wholesale,,no\n";

async fn shopify_imports_with_every_quirk(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    // A guest with the first email, other case: updated, not duplicated.
    let ada = s
        .create_customer(json!({"email": "ada@example.com", "first_name": "A."}))
        .await;
    let job = upload(&s, SHOPIFY).await;
    assert_eq!(job["status"], json!("succeeded"), "{job}");
    assert_eq!(
        (
            job["processed"].clone(),
            job["created"].clone(),
            job["updated"].clone(),
            job["failed"].clone()
        ),
        (json!(3), json!(2), json!(1), json!(0))
    );
    let (_, got) = s
        .get(&format!(
            "/admin/customers/{}?fields=*addresses,*groups",
            ada["id"].as_str().unwrap()
        ))
        .await;
    let c = &got["customer"];
    assert_eq!(
        (c["first_name"].clone(), c["last_name"].clone()),
        (json!("Ada"), json!("Lovelace"))
    );
    assert_eq!(c["company_name"], json!("Analytical, Engines Ltd"));
    assert_eq!(c["phone"], json!("+44 20 7946 0001"));
    assert_eq!(
        c["metadata"],
        json!({"shopify_customer_id": "7012345678901", "accepts_email_marketing": true,
               "accepts_sms_marketing": false, "note": "Likes \"math\",\r\nwrites notes", "tax_exempt": false})
    );
    let address = &c["addresses"][0];
    assert_eq!(
        (
            address["postal_code"].clone(),
            address["country_code"].clone(),
            address["province"].clone(),
            address["phone"].clone()
        ),
        (
            json!("02134"),
            json!("gb"),
            json!("LND"),
            json!("+44 20 7946 0000")
        )
    );
    assert_eq!(
        (
            address["is_default_shipping"].clone(),
            address["is_default_billing"].clone()
        ),
        (json!(true), json!(true))
    );
    let mut groups: Vec<&str> = c["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, vec!["Newsletter", "VIP"]);
    // Tags became groups, shared between customers.
    let (_, newsletter) = s
        .get("/admin/customer-groups?q=Newsletter&fields=id,name")
        .await;
    assert_eq!(newsletter["count"], json!(1));
    let gid = newsletter["customer_groups"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, members) = s.get(&format!("/admin/customers?groups[]={gid}")).await;
    assert_eq!(members["count"], json!(2));
    // The formula-looking phone is kept as text (and exported neutralised, see round trip).
    let (_, mallory) = s.get("/admin/customers?email=mallory@example.com").await;
    assert_eq!(mallory["customers"][0]["phone"], json!("=HYPERLINK(\"x\")"));

    // The same file again: nothing new, nothing changed.
    let again = upload(&s, SHOPIFY).await;
    assert_eq!(
        (
            again["created"].clone(),
            again["updated"].clone(),
            again["unchanged"].clone()
        ),
        (json!(0), json!(0), json!(3)),
        "{again}"
    );
    let (_, all) = s.get("/admin/customers").await;
    assert_eq!(all["count"], json!(3));
    let (_, got) = s
        .get(&format!(
            "/admin/customers/{}?fields=*addresses",
            ada["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        got["customer"]["addresses"].as_array().unwrap().len(),
        1,
        "no duplicate address"
    );

    // The older column set.
    let old = upload(&s, SHOPIFY_OLD).await;
    assert_eq!(
        (old["status"].clone(), old["created"].clone()),
        (json!("succeeded"), json!(1)),
        "{old}"
    );
    let (_, linus) = s.get("/admin/customers?email=linus@example.com&fields=*addresses,*groups,company_name,metadata").await;
    let linus = &linus["customers"][0];
    assert_eq!(linus["company_name"], json!("Kernel Org"));
    assert_eq!(linus["metadata"]["accepts_email_marketing"], json!(true));
    assert_eq!(linus["addresses"][0]["postal_code"], json!("97201"));
    assert_eq!(linus["groups"][0]["name"], json!("Wholesale"));
}

async fn bad_rows_go_to_the_error_report(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let mut csv = String::from("First Name,Last Name,Email,Default Address Country Code\n");
    let bad = [7, 23, 41, 66, 98];
    for row in 1..=100 {
        let line = match row {
            7 => "Bad,Email,not-an-email,GB".to_owned(),
            23 => "No,Email,,GB".to_owned(),
            41 => format!("Bad,Country,c{row}@example.com,XX"),
            66 => format!("{},Long,c{row}@example.com,GB", "x".repeat(300)),
            98 => "Only,\"unterminated".to_owned(),
            _ => format!("First{row},Last{row},c{row}@example.com,GB"),
        };
        csv.push_str(&line);
        csv.push('\n');
    }
    let job = upload(&s, &csv).await;
    assert_eq!(job["status"], json!("partially_failed"), "{job}");
    // Row 98's open quote swallows the rest of the file (as in any CSV reader): rows 99-100
    // never exist as rows.
    assert_eq!(
        (
            job["processed"].clone(),
            job["failed"].clone(),
            job["created"].clone()
        ),
        (json!(98), json!(5), json!(93)),
        "{job}"
    );
    let url = job["error_report_url"].as_str().unwrap();
    let report = download(&s, url).await;
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    let numbers: Vec<u64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(numbers, bad.to_vec());
    assert_eq!(&rows[0][1], "Email");
    assert!(
        rows[0][2].contains("Invalid email address"),
        "{:?}",
        rows[0]
    );
    assert_eq!(&rows[0][3], "Bad,Email,not-an-email,GB", "the original row");
    assert_eq!(&rows[1][2], "Email is required");
    assert!(rows[2][2].contains("Invalid country code: XX"));
    assert!(rows[3][2].contains("255"), "{:?}", rows[3]);
    let (_, listed) = s.get("/admin/customers").await;
    assert_eq!(listed["count"], json!(93));
    // A body of a type the route does not declare is a 415 naming it; a JSON body other than
    // `{}` is a 400; `{}` makes a job waiting for its file (no upload URL from a local folder).
    let post = |content_type: &'static str, body: &'static str| {
        let s = &s;
        async move {
            let response = s
                .client
                .post(format!("{}/admin/customers/imports", s.base))
                .bearer_auth(&s.token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = post("text/plain", "a,b").await;
    assert_eq!(status, 415);
    assert!(
        body["message"].as_str().unwrap().contains("text/plain"),
        "{body}"
    );
    let (status, _) = post("application/json", r#"{"file": "x"}"#).await;
    assert_eq!(status, 400);
    let (status, _) = post("text/csv", "").await;
    assert_eq!(status, 400);
    let (status, waiting) = post("application/json", "{}").await;
    assert_eq!(
        (
            status,
            waiting["import"]["status"].clone(),
            waiting["import"]["upload_url"].clone()
        ),
        (200, json!("pending"), Value::Null)
    );
    // A file that is not a customer CSV fails as a whole, with the reason.
    let job = upload(&s, "foo,bar\n1,2\n").await;
    assert_eq!(job["status"], json!("failed"));
    assert!(
        job["message"]
            .as_str()
            .unwrap()
            .contains("Unrecognised header"),
        "{job}"
    );
}

/// Generated customers with names, phones, metadata, addresses and groups, imported in our
/// format (the quickest way to make many), exported, imported into an empty store, and
/// compared through the API.
async fn export_import_round_trip(backend: Backend) {
    let Some(a) = TestServer::start(backend).await else {
        return;
    };
    let count = if backend == Backend::Embedded {
        10_000
    } else {
        100
    };
    let mut csv = String::from(
        "id,email,first_name,last_name,company_name,phone,has_account,metadata,groups,addresses,created_at,updated_at\n",
    );
    for i in 0..count {
        let metadata = if i % 3 == 0 {
            json!({"tier": i % 5, "nested": {"a": [1, "x"]}}).to_string()
        } else {
            String::new()
        };
        let groups = if i % 4 == 0 {
            json!(["Gold", format!("Cohort {}", i % 7)]).to_string()
        } else {
            String::new()
        };
        let addresses = if i % 2 == 0 {
            json!([{"id": format!("cuaddr_{i:026}"), "address_1": format!("{i} Main St, Apt \"{}\"", i % 9), "city": "Springfield",
                    "country_code": "us", "postal_code": format!("{:05}", i), "is_default_shipping": true, "is_default_billing": i % 4 == 0,
                    "metadata": null, "created_at": "2024-01-02T03:04:05.006Z", "updated_at": "2024-01-02T03:04:05.006Z"}]).to_string()
        } else {
            String::new()
        };
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        writer
            .write_record([
                String::new(),
                format!("user{i}@example.com"),
                format!("First{i}"),
                if i % 5 == 0 {
                    String::new()
                } else {
                    format!("Last, {i}")
                },
                String::new(),
                if i % 6 == 0 {
                    format!("+1 555 {i:04}")
                } else {
                    String::new()
                },
                (i % 10 == 0).to_string(),
                metadata,
                groups,
                addresses,
                String::new(),
                String::new(),
            ])
            .unwrap();
        csv.push_str(&String::from_utf8(writer.into_inner().unwrap()).unwrap());
    }
    let seeded = a
        .client
        .post(format!("{}/admin/customers/imports", a.base))
        .bearer_auth(&a.token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let id = seeded.json::<Value>().await.unwrap()["import"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = finished(&a, "imports", &id).await;
    assert_eq!(
        (job["status"].clone(), job["created"].clone()),
        (json!("succeeded"), json!(count)),
        "{job}"
    );

    let (status, started) = a.post("/admin/customers/exports", json!({})).await;
    assert_eq!(status, 202, "{started}");
    let export = finished(&a, "exports", started["export"]["id"].as_str().unwrap()).await;
    assert_eq!(
        (export["status"].clone(), export["row_count"].clone()),
        (json!("succeeded"), json!(count))
    );
    let file = download(&a, export["download_url"].as_str().unwrap()).await;
    assert!(file.starts_with("\u{feff}id,email,"), "BOM and our header");
    assert!(
        file.contains("'+1 555 0000"),
        "phones starting with + are neutralised"
    );

    // A fresh environment, the export imported.
    let Some(b) = TestServer::start(backend).await else {
        return;
    };
    let restored = upload(&b, &file).await;
    assert_eq!(
        (restored["status"].clone(), restored["created"].clone()),
        (json!("succeeded"), json!(count)),
        "{restored}"
    );

    let strip_group_ids = |mut v: Value| {
        for c in v["customers"].as_array_mut().unwrap() {
            for g in c["groups"].as_array_mut().unwrap() {
                // Groups are matched by name: new ids and timestamps in the new environment.
                *g = json!(g["name"]);
            }
            let mut groups = c["groups"].as_array().unwrap().clone();
            groups.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            c["groups"] = json!(groups);
            c["created_by"] = Value::Null;
        }
        v
    };
    let mut offset = 0;
    while offset < count {
        let path = format!(
            "/admin/customers?fields=*addresses,*groups&limit=1000&offset={offset}&order=email"
        );
        let (before, after) = (
            strip_group_ids(a.get(&path).await.1),
            strip_group_ids(b.get(&path).await.1),
        );
        assert_eq!(before, after, "page at {offset}");
        offset += 1000;
    }
}

async fn export_filters_and_ndjson(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let (_, group) = s
        .post("/admin/customer-groups", json!({"name": "Export me"}))
        .await;
    let gid = group["customer_group"]["id"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = s
            .create_customer(json!({"email": format!("e{i}@example.com")}))
            .await;
        ids.push(c["id"].as_str().unwrap().to_owned());
    }
    s.post(
        &format!("/admin/customer-groups/{gid}/customers"),
        json!({"add": [ids[1], ids[3]]}),
    )
    .await;
    let (status, started) = s
        .post(
            &format!("/admin/customers/exports?groups[]={gid}&format=ndjson"),
            json!({}),
        )
        .await;
    assert_eq!(status, 202, "{started}");
    let export = finished(&s, "exports", started["export"]["id"].as_str().unwrap()).await;
    assert_eq!(export["row_count"], json!(2));
    let file = download(&s, export["download_url"].as_str().unwrap()).await;
    let exported: Vec<String> = file
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(exported, vec![ids[1].clone(), ids[3].clone()]);
    // Bad filters are a 400 at once.
    let (status, body) = s.post("/admin/customers/exports?bogus=1", json!({})).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s
        .post("/admin/customers/exports?format=xml", json!({}))
        .await;
    assert_eq!(status, 400);
    let (_, listed) = s.get("/admin/customers/exports").await;
    assert_eq!(listed["exports"].as_array().unwrap().len(), 1);
    // Without a token: 401.
    let anonymous = s
        .call(
            "GET",
            &format!(
                "/admin/customers/exports/{}/download",
                export["id"].as_str().unwrap()
            ),
            None,
            false,
        )
        .await;
    assert_eq!(anonymous.0, 401);
}

/// A bad row whose cells look like formulas comes back in the error report as text a
/// spreadsheet will not run (OWASP CSV injection), as exports do.
async fn error_reports_neutralise_formulas(backend: Backend) {
    let Some(s) = TestServer::start(backend).await else {
        return;
    };
    let csv = "First Name,Last Name,Email\n\
               =1+2,Doe,not-an-email\n\
               Jo,Doe,@SUM(1+1)\n\
               +cmd,Doe,\n";
    let job = upload(&s, csv).await;
    assert_eq!(job["failed"], json!(3), "{job}");
    let report = download(&s, job["error_report_url"].as_str().unwrap()).await;
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3, "{report}");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula reached the report: {cell:?} in {row:?}"
            );
        }
    }
    assert_eq!(&rows[0][3], "'=1+2,Doe,not-an-email");
}

/// An upload URL is signed for the size the client announced, within a limit: nobody can fill
/// the bucket through it. A missing or oversized size is a 400 that creates no job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_urls_are_signed_for_a_bounded_size() {
    let Some(endpoint) = integration_tests::moto_endpoint() else {
        return;
    };
    let bucket = integration_tests::unique_name("uploads");
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let Some(s) = TestServer::start_with(Backend::Embedded, |c| {
        c.files = Some(functions::config::FilesConfig::S3 {
            bucket: bucket.clone(),
        });
    })
    .await
    else {
        return;
    };
    for bad in [
        json!({}),
        json!({"size": 0}),
        json!({"size": 3u64 * 1024 * 1024 * 1024}),
        json!({"size": "10"}),
        json!({"size": 10, "file": "x"}),
    ] {
        let (status, body) = s.post("/admin/customers/imports", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["type"], json!("invalid_data"), "{body}");
    }
    let (_, listed) = s.get("/admin/customers/imports").await;
    assert_eq!(listed["imports"], json!([]), "no job for a refused request");

    let (status, body) = s
        .post("/admin/customers/imports", json!({"size": 1234}))
        .await;
    assert_eq!(status, 200, "{body}");
    let url = body["import"]["upload_url"].as_str().expect("upload url");
    assert!(
        url.contains("X-Amz-SignedHeaders=") && url.contains("content-length"),
        "{url}"
    );
}

both_backends!(
    shopify_imports_with_every_quirk,
    bad_rows_go_to_the_error_report,
    error_reports_neutralise_formulas,
    export_import_round_trip,
    export_filters_and_ndjson,
);

/// Customers a bulk load left with pending search markers (a crash before their entries were
/// written) are indexed when the local server starts, and `q` finds them all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_indexes_what_a_cut_short_bulk_load_left() {
    use shared::ports::{SystemClock, UlidGenerator};
    use shared::store::{Index, Query};
    let store = integration_tests::fresh_store(Backend::Embedded)
        .await
        .expect("embedded store");
    let domain = functions::app::services(
        store.clone(),
        std::sync::Arc::new(SystemClock),
        std::sync::Arc::new(UlidGenerator::default()),
    );
    let folder = integration_tests::temp_dir("left-behind");
    let files = std::sync::Arc::new(shared::files::LocalFiles::new(folder.clone()));
    let transfer = functions::app::transfer_from(
        &store,
        &domain,
        files,
        functions::http::JobRunner::InProcess,
        folder,
    );
    let customers = &transfer.importer.customers;
    let draft = shared::customers::CustomerDraft {
        email: Some("left.behind@example.com".into()),
        last_name: Some("Behindsen".into()),
        ..Default::default()
    };
    let customer = customers.imported(draft, None, None, None, None).unwrap();
    let created = customers
        .create_many_imported(vec![(customer, Vec::new())])
        .await
        .unwrap();
    assert!(created[0].is_ok());
    let markers = |store: std::sync::Arc<dyn shared::store::KvStore>| async move {
        let query = Query::new(Index::Main, "SEARCH#PENDING");
        store.query(&query).await.unwrap().items.len()
    };
    assert_eq!(markers(store.clone()).await, 1);

    let s = TestServer::start_on(store.clone(), |_| {}).await;
    let mut waited = 0;
    while markers(store.clone()).await > 0 {
        assert!(waited < 100, "the markers are still there after 10 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let (status, body) = s
        .call("GET", "/admin/customers?q=behinds", None, true)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["customers"][0]["email"], "left.behind@example.com");
}
