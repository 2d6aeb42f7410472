using System.Net;
using System.Net.Sockets;
using System.Text;
using ReaperProxy.Probe.Protocol;
using ReaperProxy.Probe.Tests.Infrastructure;

namespace ReaperProxy.Probe.Tests.Cli;

/// <summary>Connection errors end the run with exit code 2 and one message that says what happened.</summary>
public sealed class ConnectionErrorTests
{
    [Fact]
    public async Task A_refused_port_exits_2_saying_nothing_listens_there()
    {
        var port = FreePort();
        var outcome = await ProbeRun.RunAsync($"ws://127.0.0.1:{port}/ws", "--limit", "1s");

        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Contains($"error: connection refused by 127.0.0.1:{port}: nothing is listening on that port", outcome.Stderr);
        Assert.DoesNotContain("check", outcome.Stdout);
    }

    [Fact]
    public async Task A_404_instead_of_101_exits_2_with_the_status_and_the_first_line_of_the_body()
    {
        await using var server = await TargetServer.StartAsync();
        var url = new Uri(server.WebSocketUri, "/nope");
        var outcome = await ProbeRun.RunAsync(url.ToString());

        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Contains($"error: the server answered the upgrade at {url} with HTTP 404 Not Found instead of 101 Switching Protocols: no WebSocket here", outcome.Stderr);
        Assert.DoesNotContain("second line", outcome.Stderr);
    }

    [Fact]
    public async Task With_json_a_connection_error_is_also_a_json_report_with_its_kind()
    {
        await using var server = await TargetServer.StartAsync();
        var outcome = await ProbeRun.RunAsync(new Uri(server.WebSocketUri, "/nope").ToString(), "--json");

        Assert.Equal(2, outcome.ExitCode);
        var json = outcome.Json;
        Assert.Equal("reaperproxy-probe/v1", json.GetProperty("schema").GetString());
        Assert.Equal(2, json.GetProperty("exitCode").GetInt32());
        Assert.Equal("status", json.GetProperty("error").GetProperty("kind").GetString());
        Assert.Equal(404, json.GetProperty("error").GetProperty("httpStatus").GetInt32());
        Assert.Empty(json.GetProperty("checks").EnumerateArray());
    }

    [Fact]
    public async Task A_101_with_a_wrong_Sec_WebSocket_Accept_exits_2()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var answer = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var buffer = new byte[4096];
            var request = new StringBuilder();
            while (!request.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
                if (n == 0)
                {
                    return;
                }

                request.Append(Encoding.ASCII.GetString(buffer, 0, n));
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n"));
        });
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var outcome = await ProbeRun.RunAsync($"ws://127.0.0.1:{port}/");
        await answer;

        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Contains("with a wrong Sec-WebSocket-Accept 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='", outcome.Stderr);
    }

    [Fact]
    public async Task A_self_signed_certificate_exits_2_pointing_at_insecure_and_insecure_accepts_it()
    {
        await using var server = await TargetServer.StartAsync(tls: true);

        var refused = await ProbeRun.RunAsync(server.WebSocketUri.ToString());
        Assert.True(refused.ExitCode == 2, refused.ToString());
        Assert.Contains($"error: TLS handshake with 127.0.0.1:{server.WebSocketUri.Port} failed: the server's certificate 'CN=reaperproxy-probe test' was refused: it is not trusted", refused.Stderr);
        Assert.Contains("add --insecure", refused.Stderr);

        var accepted = await ProbeRun.RunAsync(server.WebSocketUri.ToString(), "--insecure", "--check", "ping-answer", "--json");
        Assert.True(accepted.ExitCode == 0, accepted.ToString());
        Assert.Equal("pass", accepted.Verdict("ping-answer"));
    }

    [Fact]
    public async Task Wss_to_a_plain_port_exits_2_with_a_tls_message()
    {
        await using var server = await TargetServer.StartAsync();
        var outcome = await ProbeRun.RunAsync(new UriBuilder(server.WebSocketUri) { Scheme = "wss" }.Uri.ToString());

        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Contains($"error: TLS handshake with 127.0.0.1:{server.WebSocketUri.Port} failed", outcome.Stderr);
    }

    [Fact]
    public async Task A_server_that_accepts_but_never_answers_the_upgrade_exits_2_after_the_connect_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var outcome = await ProbeRun.RunAsync($"ws://127.0.0.1:{port}/", "--connect-timeout", "1s");

        Assert.True(outcome.ExitCode == 2, outcome.ToString());
        Assert.Contains($"error: no answer within 1 s during the WebSocket upgrade at ws://127.0.0.1:{port}/", outcome.Stderr);
    }

    [Fact]
    public void A_name_that_does_not_resolve_is_described_as_a_DNS_error()
    {
        // Not resolved for real: the tests send nothing beyond loopback, DNS queries included.
        var failure = WebSocketConnector.Describe(new SocketException((int)SocketError.HostNotFound), "chat.example.invalid", 443, resolving: true);

        Assert.Equal(ConnectFailureKind.Dns, failure.Kind);
        Assert.StartsWith("cannot resolve the host name 'chat.example.invalid'", failure.Message);
        Assert.EndsWith("check the spelling of the URL, or your DNS", failure.Message);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
