//! An independent implementation checks ours: Cloudflare's `signed_note` and `tlog_tiles` (ports
//! of Go's `sumdb/note` and `sumdb/tlog`) verify our signed checkpoints, our verifier keys and our
//! inclusion and consistency proofs — and we verify notes they sign.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rampart_crypto::{Secret, SigningKey};
use rampart_ledger::checkpoint::Checkpoint;
use rampart_ledger::note::{NoteSigner, NoteVerifier};
use rampart_ledger::tree::{self, HashSource, MemoryTree};
use rampart_ledger::{Hash, leaf_hash};
use signed_note::{Note, Signer as _, StandardSigner, StandardVerifier, VerifierList};

fn th(h: &Hash) -> tlog_tiles::Hash {
    tlog_tiles::Hash(h.0)
}

fn tree_of(n: u64) -> MemoryTree {
    let mut t = MemoryTree::new();
    for i in 0..n {
        t.push(leaf_hash(format!("entry {i}").as_bytes()));
    }
    t
}

#[test]
fn their_note_library_verifies_our_signed_checkpoints() {
    let signer = NoteSigner::new(
        "rampart.test/audit",
        SigningKey::from_seed(&Secret::new([9; 32])),
    )
    .unwrap();
    let t = tree_of(1000);
    let cp = Checkpoint {
        origin: "rampart.test/audit".into(),
        size: 1000,
        root: t.root_at(1000).unwrap(),
    };
    let signed = cp.sign(&signer).unwrap();
    let vkey = signer.verifier().encode();
    let theirs = StandardVerifier::new(&vkey).expect("they parse our verifier key");
    let known = VerifierList::new(vec![Box::new(theirs)]);
    let note = Note::from_bytes(signed.as_bytes()).unwrap();
    let (verified, _) = note.verify(&known).expect("they verify our signature");
    assert_eq!(verified.len(), 1);
    // Their checkpoint parser reads our text the same way.
    let parsed = tlog_tiles::Checkpoint::from_bytes(note.text()).unwrap();
    assert_eq!(parsed.origin(), "rampart.test/audit");
    assert_eq!(parsed.size(), 1000);
    assert_eq!(parsed.hash(), &th(&cp.root));
    // A rewritten size is rejected by them too.
    let forged = signed.replacen("\n1000\n", "\n1001\n", 1);
    let note = Note::from_bytes(forged.as_bytes()).unwrap();
    assert!(note.verify(&known).is_err());
}

#[test]
fn we_verify_notes_their_library_signs() {
    let seed = [5u8; 32];
    let ours = NoteSigner::new(
        "witness.example/w1",
        SigningKey::from_seed(&Secret::new(seed)),
    )
    .unwrap();
    let vkey = ours.verifier().encode();
    // Their private-key format: PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>.
    let id = vkey.split('+').nth(1).unwrap();
    let mut raw = vec![0x01];
    raw.extend_from_slice(&seed);
    let skey = format!(
        "PRIVATE+KEY+witness.example/w1+{id}+{}",
        STANDARD.encode(raw)
    );
    let theirs = StandardSigner::new(&skey).unwrap();
    let mut note = Note::new(b"a text\nsigned elsewhere\n", &[]).unwrap();
    note.add_sigs(&[&theirs]).unwrap();
    let bytes = note.to_bytes();
    let verifier = NoteVerifier::parse(&vkey).unwrap();
    assert_eq!(
        verifier.verify(&bytes).unwrap(),
        "a text\nsigned elsewhere\n"
    );
    assert_eq!(theirs.name(), "witness.example/w1");
}

#[test]
fn their_tlog_checks_our_proofs() {
    let t = tree_of(777);
    for size in [1u64, 2, 3, 7, 8, 9, 255, 256, 257, 511, 777] {
        let root = t.root_at(size).unwrap();
        for index in [0, size / 3, size / 2, size - 1] {
            let proof = tree::inclusion_proof(&t, index, size).unwrap();
            let leaf = t.node(0, index).unwrap();
            let p: Vec<tlog_tiles::Hash> = proof.iter().map(th).collect();
            tlog_tiles::check_record(&p, size, th(&root), index, th(&leaf))
                .unwrap_or_else(|e| panic!("inclusion {index} of {size}: {e:?}"));
        }
        for first in [1u64, size / 2, size.saturating_sub(1), size] {
            if first == 0 {
                continue;
            }
            let proof = tree::consistency_proof(&t, first, size).unwrap();
            let p: Vec<tlog_tiles::Hash> = proof.iter().map(th).collect();
            let first_root = t.root_at(first).unwrap();
            tlog_tiles::check_tree(&p, size, th(&root), first, th(&first_root))
                .unwrap_or_else(|e| panic!("consistency {first} -> {size}: {e:?}"));
        }
    }
}
