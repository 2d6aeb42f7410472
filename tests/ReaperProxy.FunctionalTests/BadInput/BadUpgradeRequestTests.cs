using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Observability;
using ReaperProxy.FunctionalTests.Relay;

namespace ReaperProxy.FunctionalTests.BadInput;

/// <summary>
/// docs/reliability.md §1, the handshake rows: a malformed WebSocket request over HTTP/1.1 or HTTP/2 is
/// refused (400, or Kestrel's RST_STREAM PROTOCOL_ERROR for HTTP/2 shapes it resets itself) before any
/// backend is contacted (the backend records every request it gets), with a healthy WebSocket beside it.
/// </summary>
public sealed class BadUpgradeRequestTests(BadUpgradeRequestTests.SharedProxy shared) : IClassFixture<BadUpgradeRequestTests.SharedProxy>
{
    private const string Key = "dGhlIHNhbXBsZSBub25jZQ==";

    /// <summary>The proxy (HTTP/1.1 and h2c endpoints) and backend the cases share.</summary>
    public sealed class SharedProxy : IAsyncLifetime
    {
        public RelayFixture Fixture { get; private set; } = null!;

        public async Task InitializeAsync() =>
            Fixture = await RelayFixture.StartAsync(output: null, new Heartbeat(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(1)), h2cClient: true);

        public async Task DisposeAsync() => await Fixture.DisposeAsync();
    }

    public static TheoryData<string, string, string> Http1Requests() => new()
    {
        // name, the request's lines after the request line (each ending in CRLF) and the body, the metric's reason.
        { "no Sec-WebSocket-Key", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n", "key" },
        { "Sec-WebSocket-Key not base64", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: not base64!\r\nSec-WebSocket-Version: 13\r\n\r\n", "key" },
        { "Sec-WebSocket-Key of 3 bytes", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: AAAA\r\nSec-WebSocket-Version: 13\r\n\r\n", "key" },
        { "two Sec-WebSocket-Key headers", $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n", "key" },
        { "duplicate Upgrade headers", $"Upgrade: websocket\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n", "upgrade" },
        { "Upgrade: h2c, websocket", $"Upgrade: h2c, websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n", "upgrade" },
        { "no Connection: Upgrade", $"Upgrade: websocket\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n", "connection" },
        { "a body (Content-Length)", $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\nhello", "body" },
        { "a chunked body", $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "body" },
        {
            "Content-Length + Transfer-Encoding (smuggling)",
            $"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            "body"
        },
    };

    [Theory]
    [MemberData(nameof(Http1Requests))]
    public async Task A_malformed_http1_upgrade_gets_400_and_closes_before_any_backend_is_contacted(string name, string rest, string reason)
    {
        var fixture = shared.Fixture;
        using var rejected = Collector<long>(fixture, "ReaperProxy", "reaper.upgrades.rejected");
        using var durations = Collector<double>(fixture, "Microsoft.AspNetCore.Hosting", "http.server.request.duration");
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy);
        var before = fixture.Backend.Requests.Count;

        var (head, ended) = await SendHttp1Async(fixture, $"GET /echo HTTP/1.1\r\nHost: reaper\r\n{rest}");

        Assert.True(head.StartsWith("HTTP/1.1 400 ", StringComparison.Ordinal), $"{name}: expected 400, got: {head}");
        Assert.Contains("Connection: close", head, StringComparison.OrdinalIgnoreCase);
        Assert.True(ended, $"{name}: the connection must end after the 400 (nothing after the request is read as another request)");
        Assert.Equal(before, fixture.Backend.Requests.Count);
        Assert.DoesNotContain(fixture.Backend.Requests, r => r.Path == "/smuggled");
        await Eventually.UntilAsync(() => rejected.GetMeasurementSnapshot().Any(m => Equals(m.Tags["reason"], reason)), $"reaper.upgrades.rejected{{reason={reason}}}");
        await Eventually.UntilAsync(() => durations.GetMeasurementSnapshot().Any(m => Equals(m.Tags["http.response.status_code"], 400)), "http.server.request.duration{status 400}");
        Assert.NotEmpty(fixture.Logs.WithEventId(2018));
        await neighbour.AssertUnaffectedAsync();
    }

    [Fact]
    public async Task A_POST_upgrade_gets_400_instead_of_reaching_the_backend_as_a_GET()
    {
        var fixture = shared.Fixture;
        var before = fixture.Backend.Requests.Count;
        var (head, _) = await SendHttp1Async(fixture, $"POST /echo HTTP/1.1\r\nHost: reaper\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n");

        Assert.StartsWith("HTTP/1.1 400 ", head);
        Assert.Equal(before, fixture.Backend.Requests.Count);
    }

    [Fact]
    public async Task The_same_handshake_well_formed_reaches_the_backend_and_upgrades()
    {
        // The harness check for the cases above: the well-formed request does reach the backend.
        var fixture = shared.Fixture;
        var before = fixture.Backend.Requests.Count;
        var (head, _) = await SendHttp1Async(fixture, $"GET /echo HTTP/1.1\r\nHost: reaper\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {Key}\r\nSec-WebSocket-Version: 13\r\n\r\n", waitForEnd: false);

        Assert.StartsWith("HTTP/1.1 101 ", head);
        await Eventually.UntilAsync(() => fixture.Backend.Requests.Count == before + 1, "the backend to get the upgrade");
    }

    public static TheoryData<string, string, string> Http2Requests() => new()
    {
        // name, the pseudo-headers (JSON), what comes back.
        { "well-formed (the harness check)", """[[":method","CONNECT"],[":protocol","websocket"],[":scheme","http"],[":path","/echo"],[":authority","reaper"],["sec-websocket-version","13"]]""", "status 200" },
        { "without :protocol", """[[":method","CONNECT"],[":scheme","http"],[":path","/echo"],[":authority","reaper"],["sec-websocket-version","13"]]""", "reset PROTOCOL_ERROR" },
        { "without :protocol, :scheme and :path (a plain CONNECT)", """[[":method","CONNECT"],[":authority","reaper:80"]]""", "status 400" },
        { "with :scheme https on a cleartext connection", """[[":method","CONNECT"],[":protocol","websocket"],[":scheme","https"],[":path","/echo"],[":authority","reaper"],["sec-websocket-version","13"]]""", "reset PROTOCOL_ERROR" },
        { "with :scheme ftp", """[[":method","CONNECT"],[":protocol","websocket"],[":scheme","ftp"],[":path","/echo"],[":authority","reaper"],["sec-websocket-version","13"]]""", "reset PROTOCOL_ERROR" },
        { "without :scheme", """[[":method","CONNECT"],[":protocol","websocket"],[":path","/echo"],[":authority","reaper"],["sec-websocket-version","13"]]""", "reset PROTOCOL_ERROR" },
        { "with a :protocol other than websocket", """[[":method","CONNECT"],[":protocol","not-websocket"],[":scheme","http"],[":path","/echo"],[":authority","reaper"]]""", "status 400" },
    };

    [Theory]
    [MemberData(nameof(Http2Requests))]
    public async Task A_malformed_http2_extended_connect_is_refused_before_any_backend_is_contacted(string name, string headers, string expected)
    {
        var fixture = shared.Fixture;
        await using var neighbour = await HealthyNeighbour.OpenAsync(fixture.Proxy, http2: true);
        var before = fixture.Backend.Requests.Count;

        var python = "/usr/bin/python3";
        var script = Path.Combine(AppContext.BaseDirectory, "BadInput", "h2connect.py");
        var h2c = fixture.Proxy.H2cUri!;
        var (exit, text) = await ExternalTool.RunAsync(python, $"{script} 127.0.0.1 {h2c.Port} \"{headers.Replace("\"", "\\\"", StringComparison.Ordinal)}\"", AppContext.BaseDirectory, TimeSpan.FromSeconds(20));
        Assert.True(exit == 0, $"{name}: h2connect.py failed (Debian's python3-h2 is needed; .ci/run installs it): {text}");
        using var result = JsonDocument.Parse(text.Trim().Split('\n')[^1]);
        var got = result.RootElement.TryGetProperty("status", out var status) ? $"status {status.GetString()}"
            : result.RootElement.TryGetProperty("reset", out var reset) ? $"reset {reset.GetString()}"
            : text.Trim();

        Assert.True(got == expected, $"{name}: expected {expected}, got {got}");
        if (expected == "status 200")
        {
            await Eventually.UntilAsync(() => fixture.Backend.Requests.Count == before + 1, "the backend to get the well-formed extended CONNECT");
        }
        else
        {
            Assert.Equal(before, fixture.Backend.Requests.Count);
        }

        await neighbour.AssertUnaffectedAsync();
    }

    private static MetricCollector<T> Collector<T>(RelayFixture fixture, string meter, string instrument)
        where T : struct =>
        new(fixture.Proxy.Host.Proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), meter, instrument);

    // Sends a raw HTTP/1.1 request; returns the response head (and body start) and whether the connection then ended.
    private static async Task<(string Head, bool Ended)> SendHttp1Async(RelayFixture fixture, string request, bool waitForEnd = true)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await socket.ConnectAsync("127.0.0.1", fixture.Proxy.PublicUri.Port, cts.Token);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), SocketFlags.None, cts.Token);
        var received = new MemoryStream();
        var buffer = new byte[8192];
        try
        {
            for (var i = 0; i < 100; i++)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
                if (n == 0)
                {
                    return (Encoding.ASCII.GetString(received.ToArray()), true);
                }

                received.Write(buffer, 0, n);
                if (!waitForEnd && received.ToArray().AsSpan().IndexOf("\r\n\r\n"u8) >= 0)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Still open after the bound.
        }
        catch (SocketException)
        {
            return (Encoding.ASCII.GetString(received.ToArray()), true);
        }

        return (Encoding.ASCII.GetString(received.ToArray()), false);
    }
}
