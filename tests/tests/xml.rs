//! The XML codec in a real Envoy: an upstream answering like the World Bank's API, read into a
//! JSON answer; an XML endpoint whose flow records the order with an XML upstream.

use semaphore_e2e::{http_client, start_semaphore, Reply, Upstream};

/// Trimmed from `api.worldbank.org/v2/country`: a namespace prefix on every element, attributes,
/// elements the schema lacks, an entity, and the empty coordinates of an aggregate.
const WORLD_BANK: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<wb:countries page="1" pages="148" per_page="2" total="296" xmlns:wb="http://www.worldbank.org">
  <wb:country id="ABW">
    <wb:iso2Code>AW</wb:iso2Code>
    <wb:name>Aruba</wb:name>
    <wb:region id="LCN" iso2code="ZJ">Latin America &amp; Caribbean </wb:region>
    <wb:adminregion id="" iso2code="" />
    <wb:incomeLevel id="HIC" iso2code="XD">High income</wb:incomeLevel>
    <wb:lendingType id="LNX" iso2code="XX">Not classified</wb:lendingType>
    <wb:capitalCity>Oranjestad</wb:capitalCity>
    <wb:longitude>-70.0167</wb:longitude>
    <wb:latitude>12.5167</wb:latitude>
  </wb:country>
  <wb:country id="AFE">
    <wb:iso2Code>ZH</wb:iso2Code>
    <wb:name>Africa Eastern and Southern</wb:name>
    <wb:region id="NA" iso2code="NA">Aggregates</wb:region>
    <wb:adminregion id="" iso2code="" />
    <wb:capitalCity />
    <wb:longitude></wb:longitude>
    <wb:latitude></wb:latitude>
  </wb:country>
</wb:countries>"#;

#[tokio::test]
async fn an_xml_upstream_shaped_like_the_world_bank_feeds_a_json_answer() {
    let world_bank = Upstream::builder()
        .route("GET", "/v2/country", |_| {
            Reply::status(200).header("content-type", "application/xml;charset=utf-8").body(WORLD_BANK)
        })
        .start();
    let envoy = start_semaphore("tests/fixtures/xml/config.hcl", &[("wb.WorldBank", world_bank.addr())])
        .await
        .unwrap();

    let response = http_client().get(envoy.url("/countries")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    // Floats hold what an f32 holds, as they would had the World Bank answered JSON.
    assert_eq!(
        response.text().await.unwrap(),
        concat!(
            r#"{"countries":["#,
            r#"{"iso2Code":"AW","name":"Aruba","region":"Latin America & Caribbean ","#,
            r#""latitude":12.51669979095459,"longitude":-70.0167007446289,"id":"ABW"},"#,
            r#"{"iso2Code":"ZH","name":"Africa Eastern and Southern","region":"Aggregates","id":"AFE"}"#,
            r#"],"page":1}"#
        )
    );

    let requests = world_bank.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!((request.path.as_str(), request.query.as_deref()), ("/v2/country", Some("per_page=2")));
    assert_eq!(request.header("accept"), Some("application/xml"));
    assert!(request.body.is_empty());
}

#[tokio::test]
async fn an_xml_endpoint_records_its_order_with_an_xml_upstream() {
    let ledger = Upstream::builder()
        .route("POST", "/entries", |_| {
            Reply::status(200)
                .header("content-type", "text/xml")
                .body("<ack><receipt>r-9</receipt><total_cents>1999</total_cents></ack>")
        })
        .start();
    let envoy =
        start_semaphore("tests/fixtures/xml/config.hcl", &[("wb.Ledger", ledger.addr())]).await.unwrap();

    let order = r#"<?xml version="1.0"?>
<order xmlns="urn:shop">
  <id>o-1</id>
  <quantity> 3 </quantity>
  <priority>URGENT</priority>
  <tags>gift</tags>
  <tags>fragile</tags>
  <note><![CDATA[Fish & chips]]> &lt;hot&gt;</note>
  <labels><key>channel</key><value>web</value></labels>
</order>"#;
    let response = http_client()
        .post(envoy.url("/orders"))
        .header("content-type", "application/xml")
        .body(order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/xml");
    assert_eq!(
        response.text().await.unwrap(),
        "<Receipt><id>o-1</id><receipt>r-9</receipt><total_cents>1999</total_cents>\
         <tags>gift</tags><tags>fragile</tags><priority>URGENT</priority></Receipt>"
    );

    let requests = ledger.requests();
    assert_eq!(requests.len(), 1);
    let entry = &requests[0];
    assert_eq!((entry.method.as_str(), entry.path.as_str()), ("POST", "/entries"));
    assert_eq!(entry.header("content-type"), Some("application/xml"));
    assert_eq!(entry.header("accept"), Some("application/xml"));
    assert_eq!(
        entry.body_text(),
        "<Entry><id>o-1</id><quantity>3</quantity><priority>URGENT</priority>\
         <tags>gift</tags><tags>fragile</tags><note>Fish &amp; chips &lt;hot&gt;</note>\
         <labels><key>channel</key><value>web</value></labels></Entry>"
    );

    let response = http_client()
        .post(envoy.url("/orders"))
        .header("content-type", "application/xml")
        .body("<order><id>o-2</id><quantity>lots</quantity></order>")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"message":"invalid request body: field `quantity`: expected an integer (int32), found \"lots\"","status":400}"#
    );
    assert_eq!(ledger.requests().len(), 1, "a refused order reaches no upstream");
}
