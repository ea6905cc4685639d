//! `Tree::decode` on arbitrary bytes. What it accepts must be what
//! docs/FORMAT.md section 7 promises a reader: safe names in strict order,
//! content only on files and adding up to their size, subtrees only on
//! directories, and an encoding that is the one and only encoding of the
//! tree (its id is the hash of these bytes, so two encodings of one
//! directory would break deduplication and diff by id).
#![no_main]

use cairn_repo::format::tree::{is_safe_name, NodeKind, Tree};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tree) = Tree::decode(data) else {
        return;
    };
    for pair in tree.nodes.windows(2) {
        assert!(pair[0].name < pair[1].name, "names not strictly increasing");
    }
    for node in &tree.nodes {
        assert!(is_safe_name(&node.name), "unsafe name {:?}", node.name);
        let total = node
            .content
            .iter()
            .try_fold(0u64, |t, c| t.checked_add(u64::from(c.len)));
        if node.kind == NodeKind::File {
            assert_eq!(total, Some(node.size), "chunk lengths do not add up");
        } else {
            assert!(
                node.content.is_empty() && node.size == 0,
                "content on a non-file"
            );
        }
        assert!(
            node.subtree.is_none() || node.kind == NodeKind::Dir,
            "subtree on a non-directory"
        );
    }
    let mut again = tree.clone();
    let bytes = again.encode();
    assert_eq!(bytes, data, "decoded tree re-encodes to other bytes");
    assert_eq!(Tree::decode(&bytes).as_ref(), Ok(&tree));
});
