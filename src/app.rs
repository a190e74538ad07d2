//! The page shell and the router of the web UI; pages live in `crate::pages`.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use crate::pages::agreement::AgreementPage;
use crate::pages::case_list::CaseListPage;
use crate::pages::case_page::CasePage;
use crate::pages::datasets::DatasetsPage;
use crate::pages::import::ImportPage;
use crate::pages::login::{LogOutButton, LoginPage};
use crate::pages::pacs::PacsPage;
use crate::pages::registry::{ModelPage, ModelsPage};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/seglab.css"/>
        <Title text="seglab"/>
        <Router>
            <header class="topbar">
                <A href="/">"seglab"</A>
                <span class="tagline">"segmentation labeling"</span>
                <nav>
                    <A href="/">"Cases"</A>
                    <A href="/registry">"Models"</A>
                    <A href="/snapshots">"Datasets"</A>
                    <A href="/readers">"Readers"</A>
                    <A href="/import">"Import"</A>
                    <A href="/pacs">"PACS"</A>
                </nav>
                <LogOutButton/>
            </header>
            <main>
                // Async rendering: pages arrive complete, readable before the WASM loads.
                <Routes fallback=|| view! { <p>"Page not found."</p> }>
                    <Route path=path!("/") view=CaseListPage ssr=SsrMode::Async/>
                    <Route path=path!("/cases/:id") view=CasePage ssr=SsrMode::Async/>
                    <Route path=path!("/registry") view=ModelsPage ssr=SsrMode::Async/>
                    <Route path=path!("/registry/:id") view=ModelPage ssr=SsrMode::Async/>
                    <Route path=path!("/snapshots") view=DatasetsPage ssr=SsrMode::Async/>
                    <Route path=path!("/readers") view=AgreementPage ssr=SsrMode::Async/>
                    <Route path=path!("/pacs") view=PacsPage/>
                    <Route path=path!("/import") view=ImportPage/>
                    <Route path=path!("/login") view=LoginPage/>
                </Routes>
            </main>
        </Router>
    }
}
