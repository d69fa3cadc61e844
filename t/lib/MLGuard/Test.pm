package MLGuard::Test;

# The integration-test harness.  Per test file it starts a private
# /usr/sbin/nginx loading our module, with every path under a temp dir and
# listening on a free loopback port; optionally a private redis-server and an
# echo upstream.  Everything is stopped when the object goes away, also when
# the test dies; stop() fails the test if a worker crashed.
#
#   my $t = MLGuard::Test->new;
#   $t->write_file('keys.txt', "alice $hash predict\n");
#   $t->start_echo;                                   # upstream at %%ECHO%%
#   $t->start_nginx(server => q{
#       location / { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt;
#                    proxy_pass http://%%ECHO%%; }
#   });
#   my $res = $t->request(POST => '/x', headers => {'X-API-Key' => $k}, body => '{}');
#   is $res->{status}, 200;  $res->{json}  # decoded problem/JSON body, if any
#   $t->stop;   # also checks the error log
#
# Placeholders in config snippets: %%DIR%% (temp dir), %%PORT%% (nginx port),
# %%ECHO%% (echo upstream host:port), %%REDIS%% (redis host:port),
# %%REDIS_SOCKET%% (redis unix socket path), %%ROOT%% (repo root).

use strict;
use warnings;

use Carp qw(croak);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path);
use File::Spec;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::INET;
use IO::Select;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Test::More;
use Time::HiRes qw(time sleep);

our @EXPORT_OK = qw(wait_for free_port sha256_hex_of random_key);

my @LIVE;
my $ROOT = File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..', '..', '..'));
$ROOT = Cwd::abs_path($ROOT) if eval { require Cwd; 1 };

sub root { $ROOT }

# Polls $cond every few milliseconds until it returns true or the deadline
# passes; returns the condition's last value.
sub wait_for {
    my ($cond, $timeout) = @_;
    $timeout //= 10;
    my $deadline = time + $timeout;
    my $delay = 0.002;
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return $v if time > $deadline;
        sleep $delay;
        $delay *= 2 if $delay < 0.05;
    }
}

# A loopback listener on a port the kernel picks, never one this process
# has handed out already: a port reserved for nginx is closed again until
# nginx binds it, and the kernel may offer it to the next bind.
my %RESERVED;
sub reserved_listener {
    my ($backlog) = @_;
    while (1) {
        my $s = IO::Socket::INET->new(Listen => $backlog, LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Proto => 'tcp', ReuseAddr => 1) or die "listen: $!";
        next if $RESERVED{ $s->sockport }++;
        return $s;
    }
}

sub free_port {
    my $s = reserved_listener(1);
    my $port = $s->sockport;
    close $s;
    return $port;
}

sub sha256_hex_of {
    require Digest::SHA;
    return Digest::SHA::sha256_hex($_[0]);
}

# A URL-safe random key like scripts/ml-guard-key makes.
sub random_key {
    my ($len) = @_;
    $len //= 43;
    my @c = ('A'..'Z', 'a'..'z', '0'..'9', '-', '_');
    open my $fh, '<:raw', '/dev/urandom' or die $!;
    my $bytes = '';
    read($fh, $bytes, $len);
    close $fh;
    return join '', map { $c[ord($_) % 64] } split //, $bytes;
}

sub new {
    my ($class, %opt) = @_;
    my $dir = tempdir('mlguard-t-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MLG_KEEP});
    chmod 0755, $dir;
    my $self = bless {
        dir     => $dir,
        port    => free_port(),
        workers => $opt{workers} // 1,
        pids    => {},
        nginx   => [],
    }, $class;
    make_path("$dir/logs", "$dir/conf", "$dir/tmp", "$dir/html");
    push @LIVE, $self;
    diag("harness dir $dir") if $ENV{MLG_KEEP};
    return $self;
}

sub dir  { $_[0]{dir} }
sub port { $_[0]{port} }
sub echo_addr { $_[0]{echo_addr} }
sub redis_addr { $_[0]{redis} ? "127.0.0.1:$_[0]{redis}{port}" : undef }
sub redis_socket { $_[0]{redis} ? $_[0]{redis}{socket} : undef }
sub redis_pid { $_[0]{redis} ? $_[0]{redis}{pid} : undef }
sub error_log { "$_[0]{dir}/logs/error.log" }
sub access_log { "$_[0]{dir}/logs/access.log" }

sub write_file {
    my ($self, $name, $content, $mode) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    make_path(dirname($path));
    open my $fh, '>:raw', $path or croak "write $path: $!";
    print $fh $content;
    close $fh;
    chmod $mode, $path if defined $mode;
    return $path;
}

sub read_file {
    my ($self, $name) = @_;
    my $path = $name =~ m{^/} ? $name : "$self->{dir}/$name";
    open my $fh, '<:raw', $path or return '';
    local $/;
    my $c = <$fh>;
    return $c // '';
}

sub module_path {
    return $ENV{MLG_ASAN} ? "$ROOT/build/asan/ngx_http_ml_guard_module.so"
                          : "$ROOT/build/ngx_http_ml_guard_module.so";
}

sub expand {
    my ($self, $text) = @_;
    $text //= '';
    my %v = (
        DIR => $self->{dir}, PORT => $self->{port}, ROOT => $ROOT,
        ECHO => $self->{echo_addr} // '127.0.0.1:1',
        REDIS => $self->redis_addr // '127.0.0.1:1',
        REDIS_SOCKET => $self->redis_socket // '/nonexistent',
    );
    $text =~ s/%%(\w+)%%/exists $v{$1} ? $v{$1} : croak "unknown placeholder %%$1%%"/ge;
    return $text;
}

# The whole nginx.conf for the given snippets:
#   main => top-level directives, http => inside http{},
#   server => inside the test server{}, conf => a complete replacement
#   (still expanded, and still given load_module/pid/log paths).
sub config_text {
    my ($self, %s) = @_;
    $s{$_} //= '' for qw(main http server listen);
    $s{listen} = " $s{listen}" if length $s{listen};
    $self->{scheme} = $s{listen} =~ /\bssl\b/ ? 'https' : 'http';
    my $user = $> == 0 ? "user root root;\n" : '';
    my $module = module_path();
    my $workers = $s{workers} // $self->{workers};
    my $head = <<"EOT";
load_module $module;
${user}worker_processes $workers;
error_log $self->{dir}/logs/error.log info;
pid $self->{dir}/logs/nginx.pid;
EOT
    my $temp = join '', map { "    ${_}_temp_path $self->{dir}/tmp/$_;\n" }
        qw(client_body proxy fastcgi uwsgi scgi);
    my $body = $s{conf} // <<"EOT";
$s{main}
events { worker_connections 1024; }
http {
    access_log $self->{dir}/logs/access.log;
$temp
    default_type application/octet-stream;
    $s{http}
    server {
        listen 127.0.0.1:$self->{port}$s{listen};
        server_name localhost;
        root $self->{dir}/html;
        $s{server}
    }
}
EOT
    return $self->expand($head . $body);
}

sub write_config {
    my ($self, %s) = @_;
    for (qw(main http server)) { $s{$_} //= '' }
    my $path = "$self->{dir}/conf/nginx.conf";
    $self->write_file($path, $self->config_text(%s));
    return $path;
}

sub nginx_env {
    my %env;
    if ($ENV{MLG_ASAN}) {
        chomp(my $asan = `gcc -print-file-name=libasan.so`);
        $env{LD_PRELOAD} = $asan;
        $env{ASAN_OPTIONS} = 'detect_leaks=0:detect_odr_violation=0';
    }
    return %env;
}

# Runs `nginx -t` on a config; returns (ok, output).
sub nginx_test {
    my ($self, %s) = @_;
    my $path = $self->write_config(%s);
    my %env = nginx_env();
    local @ENV{keys %env} = values %env;
    my $out = `/usr/sbin/nginx -t -p $self->{dir}/ -e $self->{dir}/logs/error.log -c $path 2>&1`;
    return ($? == 0, $out);
}

sub start_nginx {
    my ($self, %s) = @_;
    croak "nginx already running" if $self->{pids}{nginx};
    my $path = $self->write_config(%s);
    my %env = nginx_env();
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        @ENV{keys %env} = values %env;
        open STDOUT, '>>', "$self->{dir}/logs/stdout.log";
        open STDERR, '>>', "$self->{dir}/logs/stderr.log";
        exec '/usr/sbin/nginx', '-p', "$self->{dir}/", '-e', "$self->{dir}/logs/error.log",
            '-c', $path, '-g', 'daemon off; master_process on;'
            or POSIX::_exit(127);
    }
    $self->{pids}{nginx} = $pid;
    $self->{nginx_workers} = $s{workers} // $self->{workers};
    # nginx writes its pid file only once its sockets are bound: a listener
    # that answers before that is someone else's on this port
    my $up = wait_for(sub {
        return -1 if waitpid($pid, WNOHANG) == $pid;
        return 0 unless $self->read_file('logs/nginx.pid') =~ /^$pid\b/;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                      Proto => 'tcp', Timeout => 1);
        return $s ? 1 : 0;
    }, 10);
    if (!$up || $up == -1) {
        delete $self->{pids}{nginx};
        my $log = $self->read_file('logs/stderr.log') . $self->read_file('logs/error.log');
        croak "nginx did not start:\n$log";
    }
    return $self;
}

# Reloads nginx with a new config (same snippet keys as start_nginx) and waits
# until every old worker has been told to quit (each logs "gracefully
# shutting down" and closes its listening sockets at once), so the next
# connection is served by a new worker.
sub reload_nginx {
    my ($self, %s) = @_;
    my $pid = $self->{pids}{nginx} or croak "nginx not running";
    $self->write_config(%s) if %s;
    my $old = $self->{nginx_workers} // $self->{workers};
    my $log = $self->read_file('logs/error.log');
    my $before = () = $log =~ /reconfiguring/g;
    my $quit_before = () = $log =~ /gracefully shutting down/g;
    kill 'HUP', $pid;
    my $ok = wait_for(sub {
        my $log = $self->read_file('logs/error.log');
        my $n = () = $log =~ /reconfiguring/g;
        return 0 unless $n > $before;
        # the new workers have started once all the old ones were told to
        # quit (counting only lines this reload caused)
        my $quit = () = $log =~ /gracefully shutting down/g;
        return $quit >= $quit_before + $old ? 1 : 0;
    }, 10);
    croak "nginx did not reload" unless $ok;
    $self->{nginx_workers} = $s{workers} // $self->{workers} if %s;
    return $self;
}

sub stop_nginx {
    my ($self) = @_;
    my $pid = delete $self->{pids}{nginx} or return;
    kill 'QUIT', $pid;
    my $gone = wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 10);
    unless ($gone) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

# --- echo upstream --------------------------------------------------------
# Answers every request with its body, and the request line and headers as
# X-Echo-Method, X-Echo-Uri, X-Echo-Length and X-Echo-H-<name> headers.  A
# request header X-Echo-Accel: URI adds X-Accel-Redirect: URI to the answer
# (nginx then redirects internally to URI).

sub start_echo {
    my ($self) = @_;
    my $listen = reserved_listener(128);
    $self->{echo_addr} = '127.0.0.1:' . $listen->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $listen->accept or next;
            my $kid = fork;
            if (defined $kid && $kid == 0) {
                close $listen;
                eval { echo_serve($c) };
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $listen;
    $self->{pids}{echo} = $pid;
    return $self->{echo_addr};
}

sub echo_serve {
    my ($c) = @_;
    binmode $c;
    while (1) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, my $buf, 8192);
            return unless $n;
            $head .= $buf;
        }
        my ($h, $rest) = split /\r\n\r\n/, $head, 2;
        my ($line, @lines) = split /\r\n/, $h;
        my ($method, $uri) = split / /, $line;
        my (%hdr, @echo);
        for (@lines) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $hdr{lc $k} = $v;
            push @echo, "X-Echo-H-$k: $v";
        }
        my $body = $rest;
        if (defined $hdr{'content-length'}) {
            while (length($body) < $hdr{'content-length'}) {
                my $n = sysread($c, my $buf, 65536);
                return unless $n;
                $body .= $buf;
            }
        } elsif (($hdr{'transfer-encoding'} // '') =~ /chunked/i) {
            my $raw = $body;
            $body = '';
            while (1) {
                while ($raw !~ /\r\n/) { sysread($c, my $b, 65536) or return; $raw .= $b }
                $raw =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or return;
                my $size = hex $1;
                while (length($raw) < $size + 2) { sysread($c, my $b, 65536) or return; $raw .= $b }
                last if $size == 0;
                $body .= substr($raw, 0, $size);
                $raw = substr($raw, $size + 2);
            }
        }
        my $keep = ($hdr{connection} // '') !~ /close/i && $line =~ m{HTTP/1\.1};
        my $resp = join "\r\n", "HTTP/1.1 200 OK", "Content-Type: application/octet-stream",
            "X-Echo-Method: $method", "X-Echo-Uri: $uri", "X-Echo-Length: " . length($body),
            (defined $hdr{'x-echo-accel'} ? "X-Accel-Redirect: $hdr{'x-echo-accel'}" : ()),
            @echo, "Content-Length: " . length($body), ($keep ? () : "Connection: close"), '', '';
        syswrite $c, $resp . $body;
        return unless $keep;
    }
}

# --- redis ----------------------------------------------------------------

# Options: password => ..., args => [...], port => N (restart on a known port).
sub start_redis {
    my ($self, %opt) = @_;
    my $port = $opt{port} // free_port();
    my $rdir = "$self->{dir}/redis";
    make_path($rdir);
    my $sock = "$rdir/redis.sock";
    my @args = ('--port', $port, '--bind', '127.0.0.1', '--unixsocket', $sock,
                '--unixsocketperm', '777', '--save', '', '--appendonly', 'no',
                '--dir', $rdir, '--logfile', "$rdir/redis.log");
    push @args, '--requirepass', $opt{password} if defined $opt{password};
    push @args, @{ $opt{args} || [] };
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$rdir/stdout.log";
        open STDERR, '>>', "$rdir/stdout.log";
        exec('/usr/bin/redis-server', @args) or POSIX::_exit(127);
    }
    $self->{redis} = { pid => $pid, port => $port, socket => $sock, password => $opt{password} };
    $self->{pids}{redis} = $pid;
    my $up = wait_for(sub { $self->redis_cli('PING') =~ /PONG/ }, 10);
    croak "redis did not start" unless $up;
    return $self->{redis};
}

sub redis_cli {
    my ($self, @cmd) = @_;
    my $r = $self->{redis} or croak "no redis";
    my @auth = defined $r->{password} ? ('--no-auth-warning', '-a', $r->{password}) : ();
    my $pid = open(my $fh, '-|') // return '';
    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec('/usr/bin/redis-cli', '-p', $r->{port}, @auth, @cmd) or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return $out;
}

sub stop_redis {
    my ($self) = @_;
    my $pid = delete $self->{pids}{redis} or return;
    kill 'CONT', $pid;
    kill 'TERM', $pid;
    wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 10) or do { kill 'KILL', $pid; waitpid($pid, 0) };
}

# --- requests -------------------------------------------------------------

sub url { ($_[0]{scheme} // 'http') . "://127.0.0.1:$_[0]{port}$_[1]" }

# HTTP::Tiny request; returns its response hash plus ->{json} when the body
# is JSON.  Headers: a hash ref (values may be array refs for repeats).
# With a `listen => 'ssl'` server the request uses TLS (the server is not
# verified); `ssl => {SSL_cert_file => ..., SSL_key_file => ...}` adds
# IO::Socket::SSL options such as a client certificate.
sub request {
    my ($self, $method, $path, %opt) = @_;
    my $http = $opt{ssl}
        ? HTTP::Tiny->new(timeout => 15, keep_alive => 0, verify_SSL => 0,
                          SSL_options => { SSL_verify_mode => 0, %{ $opt{ssl} } })
        : ($self->{http} //= HTTP::Tiny->new(timeout => 15, keep_alive => 0, verify_SSL => 0,
                                             SSL_options => { SSL_verify_mode => 0 }));
    my %args = (headers => $opt{headers} || {});
    $args{content} = $opt{body} if defined $opt{body};
    my $res = $http->request($method, $self->url($path), \%args);
    my $ct = $res->{headers}{'content-type'} // '';
    if ($ct =~ m{json} && length($res->{content} // '')) {
        $res->{json} = eval { JSON::PP->new->utf8->decode($res->{content}) };
    }
    return $res;
}

# Sends raw bytes on a new connection and reads one response (headers, and
# the body by Content-Length or until close).  Returns
# { status, headers => {lc name => value}, body, raw }.  `chunks` sends
# several writes; `timeout` bounds the whole exchange.
sub raw_request {
    my ($self, $data, %opt) = @_;
    my $timeout = $opt{timeout} // 10;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5) or croak "connect: $!";
    binmode $s;
    local $SIG{PIPE} = 'IGNORE';
    for my $part (ref $data eq 'ARRAY' ? @$data : ($data)) {
        my $off = 0;
        while ($off < length $part) {
            my $n = syswrite($s, $part, length($part) - $off, $off);
            last unless defined $n;   # server closed early: read what it said
            $off += $n;
        }
    }
    return read_response($s, $timeout);
}

sub read_response {
    my ($s, $timeout) = @_;
    my $deadline = time + $timeout;
    my $sel = IO::Select->new($s);
    my $raw = '';
    my ($head_len, $clen);
    while (time < $deadline) {
        last unless $sel->can_read($deadline - time);
        my $n = sysread($s, my $buf, 65536);
        last unless $n;
        $raw .= $buf;
        if (!defined $head_len && $raw =~ /\r\n\r\n/) {
            $head_len = $+[0];
            ($clen) = substr($raw, 0, $head_len) =~ /\r\ncontent-length:\s*(\d+)/i;
        }
        last if defined $head_len && defined $clen && length($raw) >= $head_len + $clen;
    }
    my %res = (raw => $raw, status => 0, headers => {}, body => '');
    if (defined $head_len) {
        my ($line, @h) = split /\r\n/, substr($raw, 0, $head_len - 4);
        ($res{status}) = $line =~ m{^HTTP/\d\.\d (\d{3})};
        for (@h) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $res{headers}{lc $k} = exists $res{headers}{lc $k} ? "$res{headers}{lc $k}, $v" : $v;
        }
        $res{body} = substr($raw, $head_len);
        if (($res{headers}{'content-type'} // '') =~ /json/) {
            $res{json} = eval { JSON::PP->new->utf8->decode($res{body}) };
        }
    }
    return \%res;
}

# [pid, utime + stime ticks] of each of this nginx's worker processes.
sub _workers {
    my ($self) = @_;
    my $master = $self->{pids}{nginx} or return ();
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my @f = split ' ', scalar(<$fh>) // '';
        push @w, [$f[0], $f[13] + $f[14]] if @f > 15 && $f[3] == $master;
    }
    return @w;
}

sub worker_pids { map { $_->[0] } $_[0]->_workers }

# CPU seconds (user + system) used so far by this nginx's worker processes.
sub worker_cpu_seconds {
    my ($self) = @_;
    my $ticks = 0;
    $ticks += $_->[1] for $self->_workers;
    chomp(my $hz = `getconf CLK_TCK`);
    return $ticks / ($hz || 100);
}

# CPU seconds used so far by the harness's redis-server.
sub redis_cpu_seconds {
    my ($self) = @_;
    my $info = $self->redis_cli('INFO', 'cpu');
    my ($sys) = $info =~ /used_cpu_sys:([\d.]+)/;
    my ($user) = $info =~ /used_cpu_user:([\d.]+)/;
    return ($sys // 0) + ($user // 0);
}

# --- teardown -------------------------------------------------------------

sub log_problems {
    my ($self) = @_;
    my $log = $self->read_file('logs/error.log');
    my @bad = grep { /exited on signal|AddressSanitizer|\[alert\]|segmentation/i } split /\n/, $log;
    return @bad;
}

# Stops everything and adds one test: no worker crashed.
sub stop {
    my ($self) = @_;
    $self->stop_nginx;
    $self->_stop_others;
    my @bad = $self->log_problems;
    ok(!@bad, 'error log: no crashed worker, alert or sanitizer report')
        or diag(join "\n", @bad);
    $self->{stopped} = 1;
}

sub _stop_others {
    my ($self) = @_;
    $self->stop_redis;
    for my $name (keys %{ $self->{pids} }) {
        my $pid = delete $self->{pids}{$name};
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }
}

sub cleanup {
    my ($self) = @_;
    $self->stop_nginx;
    $self->_stop_others;
}

END {
    my $status = $?;
    for my $t (@LIVE) {
        next unless $t && $t->{pids};
        my $stopped = $t->{stopped};
        $t->cleanup;
        if (!$stopped) {
            my @bad = $t->log_problems;
            if (@bad) {
                print STDERR "# error log problems:\n# ", join("\n# ", @bad), "\n";
                $status ||= 1;
            }
        }
    }
    $? = $status;
}

1;
