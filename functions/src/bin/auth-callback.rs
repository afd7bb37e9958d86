//! Lambda for `GET /auth/{actor}/{provider}/callback`, `POST /auth/{actor}/{provider}/callback`; see `functions::lambda`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    functions::lambda::serve_auth(&[
        functions::http::Route::Callback,
        functions::http::Route::CallbackPost,
    ])
    .await
}
