use super::*;

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The RFC 6962 reference leaves and the root of each prefix (Certificate Transparency's
/// published test vectors).
const LEAVES: [&str; 8] =
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

#[test]
fn rfc6962_test_vectors() {
    let leaves: Vec<Hash> = LEAVES.iter().map(|l| leaf_hash(&unhex(l))).collect();
    let mut f = Frontier::default();
    assert_eq!(hex(&f.root()), ROOTS[0]);
    for n in 1..=8 {
        assert_eq!(hex(&root_of(&leaves[..n])), ROOTS[n], "recursive, size {n}");
        f.push(leaves[n - 1]);
        assert_eq!(hex(&f.root()), ROOTS[n], "frontier, size {n}");
    }
}

#[test]
fn frontier_matches_the_definition_and_round_trips() {
    let leaves: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut f = Frontier::default();
    for n in 1..=leaves.len() {
        f.push(leaves[n - 1]);
        assert_eq!(f.root(), root_of(&leaves[..n]), "size {n}");
        assert_eq!(Frontier::decode(&f.encode()), Some(f.clone()));
    }
    let mut bad = f.encode();
    bad[8] ^= 1;
    assert_eq!(Frontier::decode(&bad), None, "a wrong height is refused");
    assert_eq!(Frontier::decode(&bad[..20]), None);
}
