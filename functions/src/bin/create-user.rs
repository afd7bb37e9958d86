//! Lambda for `POST /admin/users`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[functions::http::Route::CreateUser]).await
}
