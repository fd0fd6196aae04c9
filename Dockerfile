FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY tsconfig.json ./
ENV HOST=0.0.0.0 PORT=5000 DATA_DIR=/var/lib/portcullis
RUN mkdir -p /var/lib/portcullis && chown node:node /var/lib/portcullis
VOLUME /var/lib/portcullis
EXPOSE 5000
USER node
CMD ["node", "bin/portcullis.js", "serve"]
