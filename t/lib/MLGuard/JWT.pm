package MLGuard::JWT;

# Test tokens and keys for the JWT tests, without network:
#   HS*    HMAC with Digest::SHA
#   RS*    `openssl dgst -sha256 -sign KEY -binary`
#   ES*    the same, DER signature converted to raw R||S
# Keys are made with `openssl genpkey` in a directory the test owns.
#
#   my $k = MLGuard::JWT->new($t->dir);
#   my ($priv, $pub) = $k->rsa('rsa1');          # PEM files
#   $k->ec('ec1', 'P-256');
#   my $tok = $k->token(alg => 'RS256', key => 'rsa1', claims => { sub => 'alice' });
#   $k->token(alg => 'HS256', secret => $bytes, header => { kid => 'a' }, payload => '{...}');
#   $k->jwk('rsa1', kid => 'a', alg => 'RS256')   # hash for a JWKS
#
# claims get exp = now + 300 unless given (undef deletes a claim); header
# members merge into { alg, typ }; raw_header / payload give exact JSON text.

use strict;
use warnings;

use Carp qw(croak);
use Digest::SHA qw(hmac_sha256 hmac_sha384 hmac_sha512);
use Exporter qw(import);
use File::Temp qw(tempfile);
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use POSIX ();

our @EXPORT_OK = qw(b64url b64url_decode);

my $JSON = JSON::PP->new->canonical->utf8;

my %EC_SIZE = ('P-256' => 32, 'P-384' => 48, 'P-521' => 66);

sub b64url {
    my ($bytes) = @_;
    my $s = encode_base64($bytes, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub b64url_decode {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return decode_base64($s);
}

sub new {
    my ($class, $dir) = @_;
    croak "MLGuard::JWT->new(DIR)" unless defined $dir && -d $dir;
    return bless { dir => $dir, keys => {} }, $class;
}

sub _openssl {
    my (@args) = @_;
    my $pid = open(my $fh, '-|') // croak "fork: $!";
    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec 'openssl', @args or POSIX::_exit(127);
    }
    binmode $fh;
    local $/;
    my $out = <$fh> // '';
    close $fh;
    croak "openssl @args failed" if $?;
    return $out;
}

sub _keygen {
    my ($self, $name, $type, @opts) = @_;
    my $priv = "$self->{dir}/$name.key.pem";
    my $pub = "$self->{dir}/$name.pub.pem";
    _openssl('genpkey', '-algorithm', $type, (map { ('-pkeyopt', $_) } @opts), '-out', $priv);
    _openssl('pkey', '-in', $priv, '-pubout', '-out', $pub);
    $self->{keys}{$name} = { priv => $priv, pub => $pub, type => $type };
    return ($priv, $pub);
}

# An RSA key pair (2048 bits unless given); returns (private, public) paths.
sub rsa {
    my ($self, $name, $bits) = @_;
    return $self->_keygen($name, 'RSA', 'rsa_keygen_bits:' . ($bits // 2048));
}

# An EC key pair on P-256, P-384 or P-521.
sub ec {
    my ($self, $name, $curve) = @_;
    $curve //= 'P-256';
    my @r = $self->_keygen($name, 'EC', "ec_paramgen_curve:$curve");
    $self->{keys}{$name}{curve} = $curve;
    return @r;
}

sub pub_path { $_[0]{keys}{$_[1]}{pub} // croak "no key $_[1]" }
sub priv_path { $_[0]{keys}{$_[1]}{priv} // croak "no key $_[1]" }

sub pub_pem {
    my ($self, $name) = @_;
    open my $fh, '<:raw', $self->pub_path($name) or croak $!;
    local $/;
    return scalar <$fh>;
}

sub _digest_bits {
    my ($alg) = @_;
    my ($bits) = $alg =~ /(256|384|512)$/ or croak "bad alg $alg";
    return $bits;
}

# Raw signature over $input for $alg with key $name (RS*/ES*).
sub _sign_pkey {
    my ($self, $alg, $name, $input) = @_;
    my $k = $self->{keys}{$name} or croak "no key $name";
    my ($fh, $file) = tempfile(DIR => $self->{dir}, UNLINK => 1);
    binmode $fh;
    print $fh $input;
    close $fh;
    my $sig = _openssl('dgst', '-sha' . _digest_bits($alg), '-sign', $k->{priv}, '-binary', $file);
    unlink $file;
    if ($alg =~ /^ES/) {
        my $size = $EC_SIZE{ $k->{curve} // 'P-256' };
        $sig = _der_to_raw($sig, $size);
    }
    return $sig;
}

# ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } -> r || s, each
# left-padded to the coordinate size.
sub _der_to_raw {
    my ($der, $size) = @_;
    my @b = unpack 'C*', $der;
    my $i = 0;
    croak "not a DER sequence" unless $b[$i++] == 0x30;
    my $len = $b[$i++];
    $i += $len & 0x7f if $len & 0x80;
    my $out = '';
    for (1 .. 2) {
        croak "not a DER integer" unless $b[$i++] == 0x02;
        my $n = $b[$i++];
        my $int = pack 'C*', @b[$i .. $i + $n - 1];
        $i += $n;
        $int =~ s/^\x00+//;
        $out .= ("\x00" x ($size - length $int)) . $int;
    }
    return $out;
}

# A signed token.  Options:
#   alg       HS256 ... ES512, or "none" (empty signature)
#   secret    HMAC key bytes (HS*); key: name of a key pair (RS*/ES*)
#   sign_alg  sign with this algorithm while the header says alg
#   header    extra header members; raw_header: exact header JSON text
#   claims    claims merged over { sub => 'alice', exp => now + 300 }
#   payload   exact payload JSON text
sub token {
    my ($self, %o) = @_;
    my $alg = $o{alg} // croak 'alg';
    my $header = $o{raw_header} // $JSON->encode({ alg => $alg, typ => 'JWT', %{ $o{header} || {} } });
    my $payload = $o{payload};
    if (!defined $payload) {
        my %c = (sub => 'alice', exp => time + 300);
        my $extra = $o{claims} || {};
        for (keys %$extra) {
            if (defined $extra->{$_}) { $c{$_} = $extra->{$_} } else { delete $c{$_} }
        }
        $payload = $JSON->encode(\%c);
    }
    my $input = b64url($header) . '.' . b64url($payload);
    my $sign = $o{sign_alg} // $alg;
    my $sig;
    if ($sign eq 'none') {
        $sig = '';
    } elsif ($sign =~ /^HS(\d+)$/) {
        my %f = (256 => \&hmac_sha256, 384 => \&hmac_sha384, 512 => \&hmac_sha512);
        $sig = $f{$1}->($input, $o{secret} // croak 'secret');
    } else {
        $sig = $self->_sign_pkey($sign, $o{key} // croak('key'), $input);
    }
    return $input . '.' . b64url($sig);
}

# The public key of $name as a JWK hash (n/e or crv/x/y), plus kid/alg/use
# and any other members given.
sub jwk {
    my ($self, $name, %members) = @_;
    my $k = $self->{keys}{$name} or croak "no key $name";
    my $text = _openssl('pkey', '-pubin', '-in', $k->{pub}, '-text', '-noout');
    my %jwk;
    if ($k->{type} eq 'RSA') {
        my ($hex) = $text =~ /Modulus:\s*\n((?:\s+[0-9a-f:]+\n)+)/ or croak "no modulus";
        $hex =~ s/[\s:]//g;
        my $n = pack 'H*', $hex;
        $n =~ s/^\x00+//;
        my ($e) = $text =~ /Exponent:\s*(\d+)/ or croak "no exponent";
        my $eb = '';
        while ($e > 0) { $eb = chr($e & 0xff) . $eb; $e >>= 8 }
        %jwk = (kty => 'RSA', n => b64url($n), e => b64url($eb));
    } else {
        my ($hex) = $text =~ /pub:\s*\n((?:\s+[0-9a-f:]+\n)+)/ or croak "no point";
        $hex =~ s/[\s:]//g;
        my $pt = pack 'H*', $hex;
        my $size = $EC_SIZE{ $k->{curve} };
        croak "compressed point" unless ord($pt) == 4 && length($pt) == 1 + 2 * $size;
        %jwk = (kty => 'EC', crv => $k->{curve},
                x => b64url(substr($pt, 1, $size)), y => b64url(substr($pt, 1 + $size, $size)));
    }
    for (keys %members) {
        $jwk{$_} = $members{$_} if defined $members{$_};
    }
    return \%jwk;
}

sub jwks_json {
    my ($self, @jwks) = @_;
    return $JSON->encode({ keys => \@jwks });
}

1;
