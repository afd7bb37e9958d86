//! Lambda for `POST /auth/{actor}/{provider}`, `GET /auth/{actor}/{provider}`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[
        functions::http::Route::SignIn,
        functions::http::Route::SignInGet,
    ])
    .await
}
