//! Lambda for `POST /admin/permission-grants`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve(&[functions::http::Route::CreateGrant]).await
}
