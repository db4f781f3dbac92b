use serde_json::json;

use super::*;
use crate::model::Value;
use crate::sdk::{decode_value, encode_arg};

#[test]
fn assets_travel_as_the_python_asset_reference() {
    let asset = Asset::described(
        "A0123456789abcdef".into(),
        Some("r".into()),
        Some(2),
        Some(9),
    );
    let encoded = encode_arg(&(asset.clone(), 1)).unwrap();
    let reference = Reference::Asset {
        id: "A0123456789abcdef".into(),
        name: Some("r".into()),
        count: Some(2),
        size: Some(9),
    };
    assert_eq!(
        encoded,
        Value::Raw {
            data: json!([{"type": "ref", "index": 0}, 1]),
            references: vec![reference.clone()],
        }
    );
    let wire = crate::protocol::executor::reference_to_wire(&reference);
    assert_eq!(
        serde_json::to_value(wire).unwrap(),
        json!(["asset", "A0123456789abcdef", "r", 2, 9])
    );
    let (decoded, _): (Asset, u32) = decode_value(encoded).unwrap();
    assert_eq!(decoded, asset);

    // Outside an encoded value: a plain object; an id as text is accepted too.
    let plain = serde_json::to_value(&asset).unwrap();
    assert_eq!(plain["id"], "A0123456789abcdef");
    assert_eq!(serde_json::from_value::<Asset>(plain).unwrap(), asset);
    let by_id: Asset = serde_json::from_value(json!("A0123456789abcdef")).unwrap();
    assert_eq!(by_id.id(), "A0123456789abcdef");
    assert!(serde_json::from_value::<Asset>(json!("../etc")).is_err());
    assert!(Asset::from_id("A..").is_err());
}

#[test]
fn builders_collect_files_relative_to_their_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("report/data/deep")).unwrap();
    for (path, text) in [
        ("out.txt", "hello"),
        ("report/summary.txt", "sum"),
        ("report/data/one.csv", "1"),
        ("report/data/deep/two.csv", "2"),
    ] {
        std::fs::write(base.join(path), text).unwrap();
    }
    let paths = |builder: AssetBuilder| -> Vec<String> {
        let request = builder.request(base).unwrap();
        request.files.into_iter().map(|f| f.path).collect()
    };
    assert_eq!(paths(Asset::file("out.txt")), ["out.txt"]);
    assert_eq!(
        paths(Asset::dir("report")),
        [
            "report/data/deep/two.csv",
            "report/data/one.csv",
            "report/summary.txt"
        ]
        .map(|p| p.trim_start_matches("report/").to_owned())
    );
    assert_eq!(
        paths(Asset::dir("report").matching("data/*.csv")),
        ["data/deep/two.csv", "data/one.csv"]
    );
    assert_eq!(
        paths(Asset::matching("*.txt")),
        ["out.txt", "report/summary.txt"]
    );
    assert_eq!(
        paths(Asset::file(base.join("report/summary.txt")).at("report/data")),
        ["summary.txt"]
    );
    let request = Asset::file("out.txt")
        .name("n")
        .metadata("owner", "me")
        .request(base)
        .unwrap();
    assert_eq!(request.name.as_deref(), Some("n"));
    assert_eq!(request.files[0].metadata["owner"], "me");
    assert_eq!(request.files[0].source, base.join("out.txt"));

    let error = |builder: AssetBuilder| builder.request(base).unwrap_err();
    assert!(matches!(
        error(Asset::builder().file_as("../escape.txt", "out.txt")),
        AssetError::InvalidPath { .. }
    ));
    assert!(matches!(
        error(Asset::builder().file_as("/etc/x", "out.txt")),
        AssetError::InvalidPath { .. }
    ));
    assert!(matches!(
        error(Asset::file("../x").at("report")),
        AssetError::NotAFile(_)
    ));
    assert!(matches!(
        error(
            Asset::builder()
                .file_as("a", "out.txt")
                .file_as("a/b", "out.txt")
        ),
        AssetError::Clash(_)
    ));
    assert!(matches!(
        error(
            Asset::builder()
                .file_as("a", "out.txt")
                .file_as("a", "out.txt")
        ),
        AssetError::Clash(_)
    ));
    assert!(matches!(
        error(Asset::matching("*.parquet")),
        AssetError::Empty
    ));
    assert_eq!(
        error(Asset::builder().file_as("..", "out.txt")).code(),
        "invalid_asset_path"
    );
}

#[actix_rt::test]
async fn without_a_store_assets_fail_clearly() {
    let asset = Asset::from_id("A0123456789abcdef").unwrap();
    assert!(matches!(asset.entries().await, Err(AssetError::NoStore)));
    assert!(matches!(asset.restore().await, Err(AssetError::NoStore)));
    assert!(matches!(
        Asset::file("x").persist().await,
        Err(AssetError::NoStore)
    ));
}

/// A store whose records are given, for restore tests.
struct Listing(Vec<AssetEntry>);

impl AssetHost for Listing {
    fn persist(
        &self,
        _: Option<ExecutionId>,
        _: PersistRequest,
    ) -> BoxFuture<'static, Result<Asset, AssetError>> {
        Box::pin(async { Err(AssetError::Empty) })
    }

    fn entries(
        &self,
        _: Option<ExecutionId>,
        _: String,
    ) -> BoxFuture<'static, Result<Vec<AssetEntry>, AssetError>> {
        let entries = self.0.clone();
        Box::pin(async move { Ok(entries) })
    }

    fn fetch(
        &self,
        _: Option<ExecutionId>,
        entry: AssetEntry,
        target: PathBuf,
    ) -> BoxFuture<'static, Result<(), AssetError>> {
        Box::pin(
            async move { std::fs::write(&target, &entry.blob_key).map_err(AssetError::io(target)) },
        )
    }
}

fn entry(path: &str) -> AssetEntry {
    AssetEntry {
        path: path.into(),
        blob_key: format!("content of {path}"),
        size: 1,
        metadata: Map::new(),
    }
}

#[actix_rt::test]
async fn restores_select_entries_and_never_escape() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("to");
    let host = Arc::new(Listing(vec![
        entry("a.txt"),
        entry("data/one.csv"),
        entry("data/sub/two.csv"),
        entry("database.txt"),
    ]));
    let asset = Asset::from_id("A0123456789abcdef").unwrap();
    with_assets(host, async {
        let all = asset.restore().to(&to).await.unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all["data/one.csv"], to.join("data/one.csv"));
        assert_eq!(
            std::fs::read_to_string(to.join("data/sub/two.csv")).unwrap(),
            "content of data/sub/two.csv"
        );
        let csvs = asset
            .restore()
            .matching("*.csv")
            .to(dir.path().join("csv"))
            .await;
        assert_eq!(csvs.unwrap().len(), 2);
        let data = asset
            .restore()
            .paths(["data/"])
            .to(dir.path().join("p"))
            .await;
        let data: Vec<String> = data.unwrap().into_keys().collect();
        assert_eq!(data, ["data/one.csv", "data/sub/two.csv"]);
        assert_eq!(asset.entry("a.txt").await.unwrap(), Some(entry("a.txt")));
    })
    .await;

    // A tampered listing is refused before anything is written.
    let outside = dir.path().join("escaped.txt");
    let host = Arc::new(Listing(vec![entry("ok.txt"), entry("../escaped.txt")]));
    let asset = Asset::from_id("A0123456789abcdef").unwrap();
    let into = dir.path().join("inner");
    let refused = with_assets(host, async { asset.restore().to(&into).await }).await;
    assert_eq!(refused.unwrap_err().code(), "invalid_asset_path");
    assert!(!outside.exists() && !into.join("ok.txt").exists());

    // A symbolic link in the restore directory cannot redirect a file outside it.
    #[cfg(unix)]
    {
        let link_dir = dir.path().join("linked");
        std::fs::create_dir_all(&link_dir).unwrap();
        std::os::unix::fs::symlink(dir.path(), link_dir.join("up")).unwrap();
        let host = Arc::new(Listing(vec![entry("up/escaped.txt")]));
        let asset = Asset::from_id("A0123456789abcdef").unwrap();
        let restore = async { asset.restore().to(&link_dir).await };
        let error = with_assets(host, restore).await.unwrap_err();
        assert!(matches!(error, AssetError::Escapes { .. }), "{error}");
        assert!(!outside.exists());
    }
}
