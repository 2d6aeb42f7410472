# The demo echo backend (src/ReaperProxy.EchoBackend) as an image, for deploy/compose.yaml and the smoke
# test in deploy/container/check.sh; also its one-shot WebSocket client:
#   docker run --rm --network=host reaperproxy-echo client ws://127.0.0.1:8080/echo [MESSAGE] [--wait-close SECONDS]
# Build from the repository root: docker build -f deploy/container/echo-backend.Dockerfile .
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/ReaperProxy.EchoBackend/ReaperProxy.EchoBackend.csproj src/ReaperProxy.EchoBackend/
RUN dotnet restore src/ReaperProxy.EchoBackend/ReaperProxy.EchoBackend.csproj
COPY src/ReaperProxy.EchoBackend/ src/ReaperProxy.EchoBackend/
RUN dotnet publish src/ReaperProxy.EchoBackend/ReaperProxy.EchoBackend.csproj -c Release --no-restore --disable-build-servers \
        --self-contained false -p:UseAppHost=false -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app/ ./
# WebSocket echo at /echo on port 5080, all interfaces (its own default is 127.0.0.1:5080).
ENV ASPNETCORE_URLS=http://0.0.0.0:5080 \
    ASPNETCORE_HTTP_PORTS= \
    DOTNET_EnableDiagnostics_IPC=0
EXPOSE 5080
USER $APP_UID
ENTRYPOINT ["dotnet", "ReaperProxy.EchoBackend.dll"]
