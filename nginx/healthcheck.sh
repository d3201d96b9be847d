#!/bin/sh
# Docker HEALTHCHECK for the proxy: GET /nginx-health must answer 200.
# Neither base image has curl. Alpine's busybox has wget; Debian's minimal images
# have no HTTP client at all, but perl-base is Essential there and always present.
url=http://127.0.0.1/nginx-health
if command -v wget >/dev/null 2>&1; then
    exec wget -q -T 3 -O /dev/null "$url"
fi
exec perl -MIO::Socket::INET -e '
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:80", Timeout => 3) or exit 1;
    print $s "GET /nginx-health HTTP/1.0\r\nHost: localhost\r\n\r\n";
    my $status = <$s>;
    exit(defined $status && $status =~ m{^HTTP/1\.[01] 200 } ? 0 : 1);
'
