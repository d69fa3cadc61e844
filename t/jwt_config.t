# JWT configuration: bad key files and directive arguments fail `nginx -t`
# with a message naming the file and the problem; good variants pass.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(random_key);
use MLGuard::JWT;

my $t = MLGuard::Test->new;
my $k = MLGuard::JWT->new($t->dir);
my $dir = $t->dir;

$k->rsa('rsa1');
$k->rsa('small', 1024);
$k->ec('ec256', 'P-256');
$t->write_file('short.secret', 'x' x 16);
$t->write_file('secret32', random_key(32));
$t->write_file('bad.pem', "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n");
$t->write_file('nokeys.jwks', '{"keys":[]}');
$t->write_file('enconly.jwks', $k->jwks_json($k->jwk('rsa1', kid => 'e', use => 'enc', alg => 'RSA-OAEP')));
$t->write_file('broken.jwks', '{"keys": [');
$t->write_file('notjwks.json', '{"issuer": "https://idp.test"}');
$t->write_file('keycloak.jwks', $k->jwks_json(
    $k->jwk('rsa1', kid => 'sig-1', use => 'sig', alg => 'RS256', x5t => 'abc'),
    $k->jwk('rsa1', kid => 'enc-1', use => 'enc', alg => 'RSA-OAEP'),
    $k->jwk('ec256', kid => 'sig-2', use => 'sig', alg => 'ES256'),
));
$t->write_file('empty', '');
$t->write_file('unreadable.pem', $k->pub_pem('rsa1'), 0000);

sub conf_test {
    my ($loc) = @_;
    return $t->nginx_test(server => "location / { ml_guard on; $loc proxy_pass http://127.0.0.1:1; }");
}

sub refused {
    my ($loc, $re, $name) = @_;
    my ($ok, $out) = conf_test($loc);
    ok !$ok, "$name: nginx -t fails";
    like $out, $re, "$name: message" or diag $out;
    like $out, qr/nginx\.conf:\d+/, "$name: names the config line";
}

sub accepted {
    my ($loc, $name) = @_;
    my ($ok, $out) = conf_test($loc);
    ok $ok, "$name: nginx -t passes" or diag $out;
}

refused("ml_guard_jwt_key $dir/short.secret;",
        qr{\Q$dir\E/short\.secret: .*HMAC secret is 16 bytes; HS256 needs at least 32}, 'short HMAC secret');
refused("ml_guard_jwt_key $dir/secret32 alg=HS512;", qr/HS512 needs at least 64/, 'HS512 with 32 bytes');
refused("ml_guard_jwt_key $dir/bad.pem;", qr{\Q$dir\E/bad\.pem: cannot read a PEM public key}, 'unreadable PEM');
SKIP: {
    skip 'root reads files with mode 0000', 2 if $> == 0;
    refused("ml_guard_jwt_key $dir/unreadable.pem;", qr/cannot open file: Permission denied/, 'unreadable file');
}
refused("ml_guard_jwt_key $dir/nokeys.jwks;", qr{\Q$dir\E/nokeys\.jwks: the JWKS has no usable keys}, 'JWKS without keys');
refused("ml_guard_jwt_key $dir/enconly.jwks;", qr/no usable keys \(1 skipped/, 'JWKS with only an encryption key');
refused("ml_guard_jwt_key $dir/broken.jwks;", qr/not valid JSON/, 'broken JSON');
refused("ml_guard_jwt_key $dir/notjwks.json;", qr/not a JWKS: no "keys" array/, 'JSON that is not a JWKS');
refused("ml_guard_jwt_key $dir/missing.pem;", qr{\Q$dir\E/missing\.pem: cannot open file: No such file}, 'missing file');
refused("ml_guard_jwt_key $dir/empty;", qr/the key file is empty/, 'empty file');
refused("ml_guard_jwt_key " . $k->priv_path('rsa1') . ";", qr/holds a private key/, 'private key');
refused("ml_guard_jwt_key " . $k->pub_path('small') . ";", qr/1024-bit RSA key; at least 2048/, '1024-bit RSA');
refused("ml_guard_jwt_key " . $k->pub_path('rsa1') . " alg=ES256;", qr/RSA key, which cannot verify ES256/,
        'RSA key with alg=ES256');
refused("ml_guard_jwt_key " . $k->pub_path('rsa1') . " alg=HS256;", qr/cannot verify HS256/,
        'RSA key with alg=HS256');
refused("ml_guard_jwt_key " . $k->pub_path('ec256') . " alg=ES384;", qr/P-256, which is for ES256, not ES384/,
        'P-256 key with alg=ES384');
refused("ml_guard_jwt_key $dir/secret32 alg=none;", qr/invalid parameter "alg=none"/, 'alg=none');
refused("ml_guard_jwt_key $dir/secret32 algorithm=HS256;", qr/invalid parameter/, 'unknown parameter');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_key $dir/secret32;", qr/is duplicate/, 'two keys');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_leeway soon;", qr/invalid leeway "soon"/, 'bad leeway');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_leeway 2d;", qr/invalid leeway "2d"/, 'leeway over a day');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_roles_claim .roles;", qr/invalid roles claim path/,
        'roles path starting with a dot');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_issuer '';", qr/invalid issuer/, 'empty issuer');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_cache maybe;", qr/invalid value "maybe"/, 'cache flag');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_require_exp no;", qr/invalid value "no"/, 'require_exp flag');
refused("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_cache on; ml_guard_jwt_cache off;", qr/is duplicate/,
        'cache flag twice');

accepted("ml_guard_jwt_key $dir/secret32;", 'HMAC secret');
accepted("ml_guard_jwt_key " . $k->pub_path('rsa1') . " alg=RS384;", 'RSA key with alg=RS384');
accepted("ml_guard_jwt_key $dir/keycloak.jwks;", 'Keycloak-style JWKS (sig + enc keys)');
accepted("ml_guard_jwt_key $dir/keycloak.jwks alg=ES256;", 'JWKS pinned to ES256');
accepted("ml_guard_jwt_key $dir/secret32; ml_guard_jwt_issuer https://idp.test/realms/ml;
          ml_guard_jwt_audience ml-api; ml_guard_jwt_leeway 30s;
          ml_guard_jwt_roles_claim resource_access.ml-api.roles; ml_guard_jwt_cache off;
          ml_guard_jwt_require_exp off;", 'every directive');
{
    # relative paths are resolved against the configuration's directory,
    # like ssl_certificate
    $t->write_file('conf/rel.secret', random_key(32));
    my ($ok, $out) = $t->nginx_test(server => "location / { ml_guard on; ml_guard_jwt_key rel.secret; "
                                              . "proxy_pass http://127.0.0.1:1; }");
    ok $ok, 'relative key path resolved against the conf directory' or diag $out;
}
{
    # http-level key inherited by locations
    my ($ok, $out) = $t->nginx_test(http => "ml_guard_jwt_key $dir/secret32; ml_guard_jwt_issuer x;",
                                    server => "location / { ml_guard on; ml_guard_jwt_audience y; "
                                              . "proxy_pass http://127.0.0.1:1; }");
    ok $ok, 'http-level key with location-level audience' or diag $out;
}

done_testing();
