using System.Net;
using System.Net.WebSockets;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests;

public class WebSocketProxyingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_WebSocket_over_HTTP_1_1_echoes_through_the_proxy()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { Output = output });
        await using var socket = await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));

        Assert.Equal(HttpStatusCode.SwitchingProtocols, socket.Socket.HttpStatusCode);
        Assert.Equal("one", await socket.EchoAsync("one"));
        Assert.Equal("two", await socket.EchoAsync("two"));
        var large = new string('z', 200_000);
        Assert.Equal(large, await socket.EchoAsync(large));

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await socket.CloseAsync());
        var seen = Assert.Single(backend.RequestsFor("/echo"));
        Assert.True(seen.IsWebSocket);
        Assert.Equal("HTTP/1.1", seen.Protocol);
        await Eventually.UntilAsync(() => backend.OpenWebSockets == 0, "the backend's WebSocket session to end");
    }

    [Fact]
    public async Task A_WebSocket_over_HTTP_2_extended_CONNECT_on_h2c_echoes_through_to_an_HTTP_1_1_backend()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { H2cEndpoint = true, Output = output });
        await using var socket = await TestWebSocket.ConnectHttp2Async(proxy.WebSocketUri("/echo", h2c: true));

        // Extended CONNECT answers 200, not 101.
        Assert.Equal(HttpStatusCode.OK, socket.Socket.HttpStatusCode);
        Assert.Equal("over h2", await socket.EchoAsync("over h2"));
        Assert.Equal("again", await socket.EchoAsync("again"));

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await socket.CloseAsync());
        var seen = Assert.Single(backend.RequestsFor("/echo"));
        Assert.True(seen.IsWebSocket);
        Assert.Equal("HTTP/1.1", seen.Protocol);
    }

    [Fact]
    public async Task A_WebSocket_over_HTTP_1_1_echoes_through_to_an_h2c_only_backend()
    {
        await using var backend = await TestBackend.StartAsync(new() { Protocol = BackendProtocol.H2c, Output = output });
        var config = new ProxyConfig().Cluster("backend", backend.BaseUri, http2Only: true).Route("all", "{**catch-all}", "backend");
        await using var proxy = await TestProxy.StartAsync(config, new() { Output = output });
        await using var socket = await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo"));

        Assert.Equal("to h2c", await socket.EchoAsync("to h2c"));

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await socket.CloseAsync());
        var seen = Assert.Single(backend.RequestsFor("/echo"));
        Assert.True(seen.IsWebSocket);
        Assert.Equal("HTTP/2", seen.Protocol);
    }

    [Fact]
    public async Task Several_WebSockets_echo_independently()
    {
        await using var backend = await TestBackend.StartAsync(new() { Output = output });
        await using var proxy = await TestProxy.StartAsync(ProxyConfig.CatchAll(backend.BaseUri), new() { H2cEndpoint = true, Output = output });
        var sockets = new List<TestWebSocket>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                sockets.Add(await TestWebSocket.ConnectHttp1Async(proxy.WebSocketUri("/echo")));
                sockets.Add(await TestWebSocket.ConnectHttp2Async(proxy.WebSocketUri("/echo", h2c: true)));
            }

            var answers = await Task.WhenAll(sockets.Select((s, i) => s.EchoAsync($"message {i}")));

            Assert.Equal(sockets.Select((_, i) => $"message {i}"), answers);
            Assert.Equal(6, backend.OpenWebSockets);
            foreach (var socket in sockets)
            {
                await socket.CloseAsync();
            }

            await Eventually.UntilAsync(() => backend.OpenWebSockets == 0, "every backend WebSocket session to end");
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await socket.DisposeAsync();
            }
        }
    }
}
