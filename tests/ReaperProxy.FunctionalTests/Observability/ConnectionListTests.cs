using System.Net;
using System.Text.Json;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Relay;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Observability;

/// <summary><c>GET /connections</c> on the admin listener lists live WebSockets, bounded, and only there.</summary>
public sealed class ConnectionListTests(ITestOutputHelper output)
{
    [Fact]
    public async Task WebSockets_sharing_an_HTTP2_backend_connection_are_judged_by_its_socket_not_by_write_completions()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Relay.Heartbeat.Fast, backendProtocol: BackendProtocol.H2c);
        using var admin = new HttpClient { BaseAddress = fixture.Proxy.AdminUri };
        await using var first = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        await using var second = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        Assert.Equal("a", await first.EchoAsync("a"));
        Assert.Equal("b", await second.EchoAsync("b"));

        using var list = JsonDocument.Parse(await admin.GetStringAsync("connections"));
        var progress = list.RootElement.GetProperty("connections").EnumerateArray()
            .Select(c => c.GetProperty("backend").GetProperty("progress").GetString()).ToList();

        // Both streams ride one HTTP/2 connection: the first may claim its socket ("kernel"), the other
        // is judged by the HTTP/2 connections to the backend ("shared"); neither by writes alone.
        Assert.Equal(2, progress.Count);
        Assert.All(progress, p => Assert.Contains(p, new[] { "kernel", "shared" }));
        Assert.Contains("shared", progress);
    }

    [Fact]
    public async Task Live_connections_are_listed_with_their_route_and_disappear_after_close()
    {
        await using var fixture = await RelayFixture.StartAsync(output, Relay.Heartbeat.Fast, h2cClient: true);
        using var admin = new HttpClient { BaseAddress = fixture.Proxy.AdminUri };
        await using var first = await TestWebSocket.ConnectHttp1Async(fixture.Ws("/echo"));
        await using var second = await TestWebSocket.ConnectHttp2Async(fixture.Ws("/echo", h2c: true));
        var pending = new[] { first.ReceiveTextAsync(), second.ReceiveTextAsync() };

        using (var list = JsonDocument.Parse(await admin.GetStringAsync("connections")))
        {
            Assert.Equal(2, list.RootElement.GetProperty("total").GetInt32());
            var connections = list.RootElement.GetProperty("connections").EnumerateArray().ToList();
            Assert.Equal(2, connections.Count);
            var h1 = connections.Single(c => c.GetProperty("protocol").GetString() == "http/1.1");
            Assert.Equal("all", h1.GetProperty("route").GetString());
            Assert.Equal("backend", h1.GetProperty("cluster").GetString());
            Assert.Equal(fixture.Backend.BaseUri.ToString(), h1.GetProperty("destination").GetString());
            Assert.StartsWith("127.0.0.1:", h1.GetProperty("clientAddress").GetString());
            Assert.Equal("open", h1.GetProperty("state").GetString());
            Assert.Equal("Enforce", h1.GetProperty("mode").GetString());
            Assert.True(h1.GetProperty("ageSeconds").GetDouble() >= 0);
            Assert.True(h1.GetProperty("client").GetProperty("idleSeconds").GetDouble() >= 0);
            Assert.True(h1.GetProperty("backend").TryGetProperty("lastRttMs", out _));

            // Both legs' consumption is read from the kernel: Kestrel's socket toward the client, and the
            // backend connection the upgrade request was written to (found through the connect callback).
            Assert.Equal("kernel", h1.GetProperty("client").GetProperty("progress").GetString());
            Assert.Equal("kernel", h1.GetProperty("backend").GetProperty("progress").GetString());
            var h2 = connections.Single(c => c.GetProperty("protocol").GetString() == "h2");
            Assert.Equal("kernel", h2.GetProperty("client").GetProperty("progress").GetString());
            Assert.Equal("kernel", h2.GetProperty("backend").GetProperty("progress").GetString());
        }

        using (var limited = JsonDocument.Parse(await admin.GetStringAsync("connections?limit=1")))
        {
            Assert.Equal(2, limited.RootElement.GetProperty("total").GetInt32());
            Assert.Equal(1, limited.RootElement.GetProperty("returned").GetInt32());
            Assert.Single(limited.RootElement.GetProperty("connections").EnumerateArray());
        }

        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("connections?limit=abc")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await admin.GetAsync("connections?limit=100000")).StatusCode);

        // Not on the public listener: there the path is proxied like any other (the backend has no such page).
        using var publicClient = new HttpClient { BaseAddress = fixture.Proxy.PublicUri };
        var onPublic = await publicClient.GetAsync("connections");
        Assert.Equal(HttpStatusCode.NotFound, onPublic.StatusCode);
        Assert.DoesNotContain("\"connections\"", await onPublic.Content.ReadAsStringAsync());

        await first.SendTextAsync("bye");
        await pending[0];
        await first.CloseAsync();
        await Eventually.UntilAsync(async () =>
        {
            using var list = JsonDocument.Parse(await admin.GetStringAsync("connections"));
            return list.RootElement.GetProperty("total").GetInt32() == 1
                && list.RootElement.GetProperty("connections")[0].GetProperty("protocol").GetString() == "h2";
        }, "the closed connection to leave the list");
    }
}
