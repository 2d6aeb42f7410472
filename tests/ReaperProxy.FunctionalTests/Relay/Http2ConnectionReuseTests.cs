using System.Net;
using System.Net.WebSockets;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Relay;

/// <summary>
/// DESIGN.md pitfall 1: a read left pending on Kestrel's stream after a WebSocket ended broke the next
/// HTTP/2 WebSocket on the same connection ("Reading is already in progress"). WebSockets that follow
/// one another on one HTTP/2 connection must keep working, after a clean close and after a reap.
/// </summary>
public sealed class Http2ConnectionReuseTests(ITestOutputHelper output)
{
    [Fact]
    public async Task WebSockets_in_turn_on_one_http2_connection_keep_working_after_a_close_and_after_a_reap()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Heartbeat.Fast, h2cClient: true);
        using var handler = TestClients.Handler();
        handler.EnableMultipleHttp2Connections = false;
        using var invoker = new HttpMessageInvoker(handler);
        var uri = fixture.Ws("/echo", h2c: true);

        for (var round = 0; round < 3; round++)
        {
            // A well-behaved one: echo, clean close.
            using (var ws = await ConnectAsync(uri, invoker))
            {
                Assert.Equal($"round {round}", await EchoAsync(ws, $"round {round}"));
                await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", Timeout(5));
            }

            // A silent one on the same connection: never reads, so it never answers a ping, and is reaped.
            using (var silent = await ConnectAsync(uri, invoker))
            {
                await Eventually.UntilAsync(() => fixture.Logs.WithEventId(2001).Count() == round + 1, "the silent WebSocket to be reaped",
                    Heartbeat.Fast.Deadline + Heartbeat.Slack);
            }
        }

        // And the connection is still good for one more.
        using var last = await ConnectAsync(uri, invoker);
        Assert.Equal("last", await EchoAsync(last, "last"));
        Assert.Equal(3, fixture.Logs.WithEventId(2001).Count());
    }

    private static async Task<ClientWebSocket> ConnectAsync(Uri uri, HttpMessageInvoker invoker)
    {
        var ws = new ClientWebSocket();
        ws.Options.HttpVersion = HttpVersion.Version20;
        ws.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        ws.Options.KeepAliveInterval = TimeSpan.Zero;
        await ws.ConnectAsync(uri, invoker, Timeout(10));
        return ws;
    }

    private static async Task<string> EchoAsync(ClientWebSocket ws, string text)
    {
        await ws.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, true, Timeout(5));
        var buffer = new byte[1024];
        var result = await ws.ReceiveAsync(buffer, Timeout(5));
        return Encoding.UTF8.GetString(buffer, 0, result.Count);
    }

    private static CancellationToken Timeout(int seconds) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;
}
